"""``batchemo video``: an emotion timeline per face for each video, as CSV/JSON and an HTML report.

Kept apart from cli.py so the video command can grow without touching the others; cli.build_parser()
registers it with ``add_parser``.
"""
from __future__ import annotations

import argparse

from .cli import at_least


def cmd_video(a: argparse.Namespace) -> int:
    from .cli import _err, _log
    from .outputs import write_table
    from .video import STATUS_FAILED, analyze_videos, describe, find_videos, timeline_table

    if not (a.csv or a.json or a.report):
        _err("nothing to write: give --csv, --json and/or --report")
        return 2
    paths = find_videos(a.videos)
    if not paths:
        raise FileNotFoundError("no video found in " + ", ".join(a.videos)
                                + " (looked for .mp4, .avi, .mov, .mkv, .webm)")
    options = {"scale_factor": a.scale_factor, "min_neighbors": a.min_neighbors} if a.detector == "haar" else {}
    results = analyze_videos(
        paths, model=a.model, fps=a.fps, detector=a.detector, smooth=a.smooth or None,
        explain_keyframes=a.explain_keyframes if a.report else 0, detector_options=options,
        lime_samples=a.lime_samples, seed=a.seed, progress=not a.quiet,
        on_video=lambda df: df.attrs["status"] == STATUS_FAILED or _log(describe(df)),  # failures: listed last
    )
    written = []
    if a.csv:
        written.append(write_table(timeline_table(results), a.csv))
    if a.json:
        written.append(write_table(timeline_table(results), a.json))
    if a.report:
        from .video_report import write_video_report

        written.append(write_video_report(results, a.report))
    failed = [df.attrs for df in results if df.attrs["status"] == STATUS_FAILED]
    faces = sum(df.attrs["faces"] for df in results)
    rows = sum(len(df) for df in results)
    print(f"{len(results)} video{'s' if len(results) != 1 else ''}: {len(results) - len(failed)} analysed, "
          f"{len(failed)} failed, {faces} face{'s' if faces != 1 else ''} tracked, {rows} timeline rows"
          + (f" -> {', '.join(map(str, written))}" if written else ""))
    for f in failed:
        _log(f"batchemo: failed: {f['video']}: {f['reason']}")
    return 1 if len(failed) == len(results) else 0


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``video`` on the subparsers of ``batchemo``."""
    v = sub.add_parser(
        "video", help="an emotion timeline per face for each video (CSV and HTML report)",
        description="Decode each VIDEO as a stream, sample frames at their own timestamps, find the faces, "
        "follow each face from frame to frame (a stable face_id), and classify its emotion. Writes one CSV "
        "row per face per sampled frame (video, frame, time, face_id, box, label, confidence, the 7 raw "
        "probabilities p_* and the smoothed ps_*), and an HTML report with, per face, a timeline chart, the "
        "dominant emotion per segment, time on screen, keyframes and LIME heatmaps. A folder is searched "
        "for .mp4, .avi, .mov, .mkv and .webm files. A missing, damaged or truncated video gets one line "
        "on stderr and the others go on (a truncated one keeps the timeline of its readable part). "
        "Exit status 0 unless no video could be analysed.",
        epilog="example: batchemo video clip.mp4 --csv timeline.csv --report video.html --smooth 1",
    )
    v.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or folders holding videos")
    v.add_argument("--csv", help="timeline CSV to write, one row per face per sampled frame")
    v.add_argument("--json", help="the same timeline as JSON records")
    v.add_argument("--report", help="self-contained HTML report to write")
    v.add_argument("--fps", type=at_least(0, float), default=2.0,
                   help="frames sampled per second of video; 0 = every frame (default: %(default)s)")
    v.add_argument("--smooth", type=at_least(0, float), metavar="SECONDS",
                   help="smooth each face's probabilities with an exponential moving average of this time "
                   "constant; the raw values stay in the CSV beside the smoothed ps_* (default: off)")
    v.add_argument("--explain-keyframes", type=at_least(0), default=1, metavar="N",
                   help="LIME heatmaps in the report for N keyframes per face, its most confident moments "
                   "of the emotions it showed longest; 0 = none (default: %(default)s)")
    v.add_argument("--lime-samples", type=at_least(0), default=1000,
                   help="LIME perturbations per explained keyframe (default: %(default)s)")
    v.add_argument("--detector", choices=["haar", "hog", "cnn"], default="haar",
                   help="face detector: haar (OpenCV, default), hog or cnn (dlib, needs batchemo[dlib])")
    v.add_argument("--scale-factor", type=float, default=1.2,
                   help="Haar scaleFactor (default: %(default)s, finer than run's 1.3: video frames are small and "
                   "soft, and a timeline needs the face in most frames)")
    v.add_argument("--min-neighbors", type=int, default=5, help="Haar minNeighbors (default: %(default)s)")
    v.add_argument("--model", help="model file (.keras); default: the shipped model")
    v.add_argument("--seed", type=int, default=0, help="LIME random seed (default: %(default)s)")
    v.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    v.set_defaults(func=cmd_video)
    return v
