"""``batchemo run``: photos (and the videos met on the way) to an HTML report and CSV/JSON tables."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..gallery import GALLERY_SIZE
from ..sources import MAX_PIXELS, printable
from .options import (
    add_cache, add_detector, add_jobs, add_lime, add_model, add_people, add_quiet, check_inputs, check_outputs,
    detector_options, err, log, log_problems, load_known, number, report_file, resumable, table_file,
)


def cmd_run(a: argparse.Namespace) -> int:
    import contextlib

    from ..engine import EMBEDDING_COLUMNS, TABLE_COLUMNS, run
    from ..outputs import TableWriter, remove_stale_temp_files
    from ..report.run import summary

    if not (a.report or a.csv or a.json):
        err("nothing to write: give --report, --csv and/or --json")
        return 2
    check_inputs(a.paths)
    video_roots = _videos_in(a.paths)  # the run's videos, each with the folder it was found under
    videos = list(video_roots)
    prefix = Path(a.report or a.csv or a.json).with_suffix("")
    extra = [prefix.parent / (prefix.name + s) for s in (".timeline.csv", ".videos.html")] if videos else []
    outputs = check_outputs(a.report, a.csv, a.json, *extra, inputs=a.paths)
    for out in outputs:  # what a killed earlier run could not clean up
        remove_stale_temp_files(out.parent, out.name)
    known = load_known(a)
    columns = TABLE_COLUMNS + (EMBEDDING_COLUMNS if a.embeddings and a.people else [])
    with contextlib.ExitStack() as stack:  # the tables replace earlier ones only once complete
        sinks = [stack.enter_context(TableWriter(p, columns)) for p in (a.csv, a.json) if p]
        result = run(
            a.paths, model=a.model, detector=a.detector, explain=a.explain, lime_samples=a.lime_samples,
            jobs=a.jobs, backend=a.backend, scheduler=a.scheduler, progress=not a.quiet, seed=a.seed,
            cache=a.cache, sinks=sinks, gallery=a.gallery, keep_table=False, max_pixels=a.max_pixels,
            people=a.people, embeddings=a.embeddings, detector_options=detector_options(a),
        )
        clips = _analyze_videos(a, videos) if videos else []
        refs = result.faces + [t for clip in clips for t in clip.tracks]
        if a.people:  # photos and videos share one set of people
            from ..people import assign

            assign(refs, known)
            for clip in clips:
                clip.fill_people()
        written, links = _write_videos(a, clips) if clips else ([], [])
        fill = {r.row: {"person": r.person} for r in result.faces if r.person}
        for sink in sinks:  # each video gets a row too, saying where its timeline is or why it failed
            sink.write(_video_rows(links, written, video_roots))
            sink.close(fill)
    written += [p for p in (a.csv, a.json) if p]
    if a.report:
        from ..report.run import write_run_report

        people = _people_views(result, refs, links, clips) if a.people else None
        total = len({r.person for r in refs if r.person})
        written.append(write_run_report(result, a.report, links, people, total))
    s = summary(result)
    parts = []
    if s["images"] or not videos:
        parts.append(f"{s['images']} image{'s' if s['images'] != 1 else ''}: {s['images_with_faces']} with faces, "
                     f"{s['faces']} face{'s' if s['faces'] != 1 else ''}, {s['images_without_faces']} without a "
                     f"face, {s['failed']} failed, in {s['seconds']:.1f} s")
    if result.info.get("cached"):
        parts.append(f"{result.info['cached']} reused from {a.cache}")
    if s["skipped"]:
        parts.append(f"{s['skipped']} other file{'s' if s['skipped'] != 1 else ''} skipped (not images or videos)")
    failed_videos = sum(v["status"] == "failed" for v in links)
    if videos:
        parts.append(f"{len(videos)} video{'s' if len(videos) != 1 else ''}: {len(videos) - failed_videos} analysed, "
                     f"{failed_videos} failed")
    if a.people:
        n_people = len({r.person for r in refs if r.person})
        parts.append(f"{n_people} {'person' if n_people == 1 else 'people'}")
    print("; ".join(parts) + (f" -> {', '.join(map(str, written))}" if written else ""))
    # skipped files are counted above and listed in the tables and report; a cut list says where the rest is
    log_problems(result.stats.problems, result.stats.problems_total, a.csv or a.json or a.report)
    if s["images"] + len(videos) == 0:
        err("no images or videos found in " + ", ".join(a.paths))
        return 1
    processed = s["images"] - s["failed"] + len(videos) - failed_videos
    return 0 if processed > 0 else 1


def _people_views(result, refs: list, links: list[dict], clips: list) -> list[dict]:
    """The People section's data: per person counts, emotion shares and their telling faces as images."""
    from ..engine import face_images
    from ..people import summarise

    people = summarise(refs)
    wanted = [r for p in people for r in (p["typical"], p["most"], p["least"]) if r is not None]
    images = face_images(result, wanted)
    hrefs = {v["video"]: v["href"] for v in links}
    for p in people:
        for key in ("typical", "most", "least"):
            r = p[key]
            p[key] = None if r is None else dict(
                images.get((r.source, r.face_index), {}), source=r.source, label=r.label, confidence=r.confidence)
        if p["typical"] is None and p["appearances"]:  # seen in videos only: their most confident moment
            first = p["appearances"][0]
            moments = [k for clip in clips if clip.info["video"] == first.source for k in clip.keyframes
                       if k.face_id == first.track]
            if moments:
                best = max(moments, key=lambda k: k.confidence)
                p["typical"] = {"face_jpg": best.face_jpg, "source": first.source, "label": best.label,
                                "confidence": best.confidence}
        p["appearances"] = [{"video": os.path.basename(t.source), "face_id": t.track, "time": t.time,
                             "samples": int(t.weight), "label": t.label,
                             "href": hrefs.get(t.source, "")} for t in p["appearances"]]
    return people


def _videos_in(paths: list[str]) -> dict[Path, Path | None]:
    """The videos under ``paths``, in walk order, each with the folder it was found under (None if named)."""
    from ..sources import walk

    return {f.path: f.root for f in walk(paths) if f.kind == "video"}


def _analyze_videos(a: argparse.Namespace, videos: list[Path]) -> list:
    from ..video import analyze_videos

    return analyze_videos(
        videos, model=a.model, detector=a.detector, detector_options=detector_options(a, video=True),
        explain_keyframes=1 if a.explain and a.report else 0, lime_samples=a.lime_samples, seed=a.seed,
        progress=not a.quiet, log=log, people=a.people, name_people=False,
    )


def _write_videos(a: argparse.Namespace, clips: list) -> tuple[list[Path], list[dict]]:
    """Timelines of the run's videos: PREFIX.timeline.csv and PREFIX.videos.html beside the first output.

    Returns the files written and, per video, what the run report's table shows and links to.
    """
    from ..outputs import write_table
    from ..video import timeline_table

    prefix = Path(a.report or a.csv or a.json).with_suffix("")
    written = [write_table(timeline_table(clips), prefix.parent / (prefix.name + ".timeline.csv"))]
    href = ""
    if a.report:
        from ..report.video import write_video_report

        page = write_video_report(clips, prefix.parent / (prefix.name + ".videos.html"))
        written.append(page)
        href = Path(os.path.relpath(page, Path(a.report).parent)).as_posix()
    links = [
        {"video": r.info["video"], "name": r.info["name"], "status": r.status, "reason": r.info["reason"],
         "duration": float(r.info["duration"]), "faces": int(r.info["faces"]),
         "frames_sampled": int(r.info["frames_sampled"]), "href": f"{href}#video-{i}" if href else ""}
        for i, r in enumerate(clips, 1)
    ]
    return written, links


def _video_rows(links: list[dict], written: list, video_roots: dict) -> list[dict]:
    """A table row per video: status ``video`` (its faces are in the timeline) or ``failed``, and why."""
    from ..records import STATUS_FAILED, STATUS_VIDEO

    roots = {printable(str(path)): root for path, root in video_roots.items()}  # as video.py names them
    timeline = next((p.name for p in written if str(p).endswith(".timeline.csv")), "the timeline CSV")
    rows = []
    for v in links:
        root = roots.get(v["video"])
        rel = os.path.relpath(v["video"], root) if root is not None else os.path.basename(v["video"])
        failed = v["status"] == STATUS_FAILED
        reason = v["reason"] if failed else (
            f"{v['faces']} face{'s' if v['faces'] != 1 else ''} tracked, timeline in {timeline}"
            + (f" ({v['reason']})" if v["reason"] else ""))
        rows.append({"path": v["video"], "folder": os.path.dirname(rel) or ".",
                     "status": STATUS_FAILED if failed else STATUS_VIDEO, "reason": reason})
    return rows


def add_parser(sub) -> None:
    r = sub.add_parser(
        "run", help="faces, emotions and LIME heatmaps for photos, in one shareable HTML report",
        description="Find every face in the images under PATH (folders are walked recursively), classify its "
        "emotion with the CNN, explain the prediction with LIME, and write an HTML report and/or CSV/JSON "
        "(one row per face; images without faces and files that failed are listed too). Videos found under "
        "PATH get an emotion timeline (PREFIX.timeline.csv, PREFIX.videos.html beside the first output), "
        "linked from the report. Output paths are checked before any work. "
        "Exit status 0 unless nothing could be processed.",
        epilog="example: batchemo run photos/ --report out/report.html --csv out/faces.csv",
    )
    r.add_argument("paths", nargs="+", metavar="PATH", help="photos, videos, or folders holding them")
    r.add_argument("--report", type=report_file, help="self-contained HTML report to write (.html)")
    r.add_argument("--csv", type=table_file, help="table to write, one row per face (and per file without one, with its status "
                   "and reason), streamed as the run goes")
    r.add_argument("--json", type=table_file, help="the same table as JSON records (for --csv and --json alike, the suffix decides "
                   "the format: .csv, .json, or .parquet with pyarrow: pip install batchemo[parquet])")
    add_detector(r)
    r.add_argument("--explain", action=argparse.BooleanOptionalAction, default=True,
                   help="LIME heatmap for every face (default: on)")
    add_lime(r)
    add_jobs(r, 1, "worker processes (each with its own model; on 2 cores one process already keeps both busy)")
    r.add_argument("--backend", choices=["loky", "dask"], default="loky", help="joblib backend (default: %(default)s)")
    r.add_argument("--scheduler", help="Dask scheduler address for --backend dask (default: a local cluster)")
    add_model(r)
    add_people(r)
    r.add_argument("--gallery", type=number(int, 0, 100_000), default=GALLERY_SIZE, metavar="N",
                   help="image cards in the report at most (default: %(default)s): a run with more images shows, "
                   "for each emotion, the faces the model was most and least sure of and a sample of each "
                   "folder, so the report stays small enough to e-mail; the statistics and the CSV/JSON cover "
                   "every image")
    r.add_argument("--max-pixels", type=number(int, 1, 2_000_000_000), default=MAX_PIXELS, metavar="N",
                   help="refuse PNG/TIFF/... images larger than N pixels, which must be decoded whole (JPEGs of "
                   "any size are decoded reduced) (default: %(default)s)")
    add_cache(r)
    add_quiet(r)
    r.set_defaults(func=resumable(cmd_run))
