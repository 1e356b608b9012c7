"""``batchemo video``: an emotion timeline per face for each video, as CSV/JSON and an HTML report."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..core.files import printable
from .options import (
    ManualFormatter,
    add_cache,
    add_detector,
    add_jobs,
    add_lime,
    add_model,
    add_people,
    add_quiet,
    check_inputs,
    check_outputs,
    detector_options,
    err,
    load_known,
    log,
    number,
    report_file,
    resumable,
    table_file,
)


def cmd_video(a: argparse.Namespace) -> int:
    from ..core.records import STATUS_FAILED
    from ..pipeline.video import analyze_videos, describe
    from ..sources.walk import find_videos

    if not (a.csv or a.json or a.report or a.moments):
        err("nothing to write: give --csv, --json, --report and/or --moments")
        return 2
    check_outputs(a.csv, a.json, a.report, a.moments, inputs=a.videos)
    known = load_known(a)
    paths = find_videos(a.videos)
    if not paths:
        check_inputs(a.videos)
        raise FileNotFoundError("no video found in " + ", ".join(a.videos)
                                + " (looked for .mp4, .avi, .mov, .mkv, .webm)")
    results = analyze_videos(
        paths, model=a.model, fps=a.fps, detector=a.detector, smooth=a.smooth or None,
        explain_keyframes=a.explain_keyframes if a.report else 0,
        detector_options=detector_options(a, video=True), lime_samples=a.lime_samples, seed=a.seed,
        jobs=a.jobs, progress=not a.quiet, people=a.people, known=known, tolerance=a.tolerance,
        detect_fps=a.detect_fps, work=a.cache,
    )
    for r in results:
        if r.status != STATUS_FAILED:
            log(describe(r))
    failed = [r.info for r in results if r.status == STATUS_FAILED]
    written = _write(a, results) if len(failed) < len(results) else []
    faces = sum(r.info["faces"] for r in results)
    rows = sum(r.rows for r in results)
    print(f"{len(results)} video{'s' if len(results) != 1 else ''}: {len(results) - len(failed)} analysed, "
          f"{len(failed)} failed, {faces} face{'s' if faces != 1 else ''} tracked, {rows} timeline rows"
          + (f" -> {', '.join(map(str, written))}" if written else ""))
    for f in failed:  # listed last, where a person looks
        log(f"batchemo: failed: {printable(str(f['video']))}: {printable(str(f['reason']))}")
    if len(failed) == len(results):
        log("batchemo: no video could be analysed: nothing written (earlier outputs are untouched)")
        return 1
    return 0


def _write(a: argparse.Namespace, results: list) -> list:
    """The tables and the report of ``batchemo video``, people filled, each written once."""
    from ..outputs.sinks import write_moments, write_timeline

    written = [write_timeline(results, p) for p in (a.csv, a.json) if p]
    if a.embeddings and a.people:  # each face's mean identity embedding, only when asked
        written.append(_write_embeddings(results, a.csv or a.json or a.report or a.moments))
    if a.moments:
        written.append(write_moments(results, a.moments))
    if a.report:
        from ..pipeline.pictures import pictures_of
        from ..report.video import write_video_report

        pictures_of(results, a.model, a.detector, detector_options(a, video=True), explain=a.explain_keyframes,
                    lime_samples=a.lime_samples, seed=a.seed, jobs=a.jobs)
        timeline = next((p for p in (a.csv, a.json) if p), "")
        written.append(write_video_report(results, a.report, timeline=str(timeline),
                                          moments=str(a.moments or "")))
    return written


def _write_embeddings(results: list, first) -> Path:
    """PREFIX.embeddings.csv: one row per track, its mean identity embedding (they identify people)."""
    from ..outputs.rows import EMBEDDING_COLUMNS
    from ..outputs.sinks import write_rows

    out = Path(first).with_suffix("")
    rows = ({"video": t.source, "face_id": t.track, "person": t.person,
             **dict(zip(EMBEDDING_COLUMNS, map(float, t.embedding)))} for r in results for t in r.tracks)
    return write_rows(rows, out.parent / (out.name + ".embeddings.csv"), ["video", "face_id", "person",
                                                                          *EMBEDDING_COLUMNS])


def add_parser(sub) -> None:
    from ..outputs.columns import TIMELINE, help_text
    from ..pipeline.video import DETECT_FPS, SMOOTH

    v = sub.add_parser(
        "video", help="an emotion timeline per face for each video (CSV and HTML report)",
        description="Decode each VIDEO as a stream, sample frames at their own timestamps, find the faces, "
        "follow each face from frame to frame (a stable face_id), and classify its emotion. Writes one CSV "
        "row per face per sampled frame (columns below), the moments worth jumping to (--moments), and an "
        "HTML report with, per person, an emotion chart over the whole video and their moments with frames "
        "and LIME heatmaps; its size does not grow with the video's length. A folder is "
        "searched for .mp4, .avi, .mov, .mkv and .webm files. A missing, damaged or truncated video (or a "
        "photo given by mistake) gets one line on stderr and the others go on (a truncated one keeps the "
        "timeline of its readable part). Exit status 0 unless no video could be analysed.",
        epilog=help_text(TIMELINE, "timeline columns (CSV/JSON; one row per face per sampled frame):")
        + "\n\nexample: batchemo video clip.mp4 --csv timeline.csv --report video.html --fps 0",
        formatter_class=ManualFormatter,
    )
    v.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or folders holding videos")
    v.add_argument("--csv", type=table_file, help="timeline CSV to write, one row per face per sampled frame")
    v.add_argument("--json", type=table_file, help="the same timeline as JSON records")
    v.add_argument("--report", type=report_file, help="self-contained HTML report to write")
    v.add_argument("--fps", type=number(float, 0, 1000), default=2.0,
                   help="frames sampled per second of video; 0 = every frame, the whole frame searched "
                   "--detect-fps times a second and faces followed between (default: %(default)s)")
    v.add_argument("--detect-fps", type=number(float, 0, 1000), default=DETECT_FPS, metavar="N",
                   help="with a high --fps, search the whole frame N times a second of video and find each "
                   "face again in a small window around it between; 0 = search every sampled frame "
                   "(default: %(default)s)")
    v.add_argument("--smooth", type=number(float, 0, 3600), metavar="SECONDS", default=SMOOTH,
                   help="smooth each face's probabilities with an exponential moving average of this time "
                   "constant: label, confidence and p_* in the CSV; the unsmoothed values stay beside them "
                   "as raw_label, raw_confidence and raw_p_*; 0 = off (default: %(default)s, chosen by "
                   "benchmarks/smoothing.py: 2-10x fewer label flips for ~1 s of lag)")
    v.add_argument("--explain-keyframes", type=number(int, 0, 100), default=1, metavar="N",
                   help="LIME heatmaps in the report for N keyframes per face, its most confident moments "
                   "of the emotions it showed longest; 0 = none (default: %(default)s)")
    add_lime(v, "keyframe")
    add_jobs(v, 2, "keyframe explanations (threads sharing one model)")
    add_detector(v)
    add_model(v)
    v.add_argument("--moments", type=table_file, metavar="FILE", help="the moments worth jumping to (per person, the "
                   "strongest moment of each emotion and each change of mood, with times) as a table: .csv, .json "
                   "or .parquet")
    add_people(v)
    add_cache(v)
    add_quiet(v)
    v.set_defaults(func=resumable(cmd_video))
