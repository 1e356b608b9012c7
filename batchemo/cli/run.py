"""``batchemo run``: photos (and the videos met on the way) to an HTML report and CSV/JSON tables."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..pipeline.gallery import GALLERY_SIZE
from ..sources.images import MAX_PIXELS
from .options import (
    MAX_JOBS,
    ManualFormatter,
    add_cache,
    add_detector,
    add_lime,
    add_model,
    add_people,
    add_quiet,
    check_inputs,
    check_outputs,
    detector_options,
    err,
    log,
    log_problems,
    number,
    report_file,
    resumable,
    table_file,
)


def cmd_run(a: argparse.Namespace) -> int:
    """Parse, analyse (``pipeline.run``: photos and videos, people shared), write the files."""
    from ..core.files import remove_stale_temp_files
    from ..outputs.sinks import TableSink
    from ..pipeline.run import run

    if not (a.report or a.csv or a.json):
        err("nothing to write: give --report, --csv and/or --json")
        return 2
    check_inputs(a.paths)
    prefix = Path(a.report or a.csv or a.json).with_suffix("")
    timeline = prefix.parent / (prefix.name + ".timeline.csv")  # written only if the run has videos
    for out in check_outputs(a.report, a.csv, a.json, timeline, a.moments, inputs=a.paths):
        remove_stale_temp_files(out.parent, out.name)  # what a killed earlier run left
    options = run_options(a)
    sink = TableSink([p for p in (a.csv, a.json) if p], options.embeddings and options.people, timeline.name)
    try:
        result = run(a.paths, options, sinks=[sink])
    except BaseException:
        sink.remove()
        raise
    written = sink.close(result) + write_video_tables(result.videos, timeline, a.moments)
    if a.report:
        from ..pipeline.pictures import pictures_of
        from ..report.run import write_run_report

        pictures_of(result.videos, options.model, options.detector, options.detector_options,
                    explain=1 if a.explain else 0, lime_samples=a.lime_samples, seed=a.seed)
        written.append(write_run_report(result, a.report, timeline.name if result.videos else "",
                                        Path(a.moments).name if a.moments else ""))
    print(_summary_line(result) + (f" -> {', '.join(map(str, written))}" if written else ""))
    # skipped files are counted above and listed in the tables and report; a cut list says where the rest is
    log_problems(result.stats.problems, result.stats.problems_total, a.csv or a.json or a.report)
    s = _counts(result)
    if s["images"] + s["videos"] == 0:
        err("no images or videos found in " + ", ".join(a.paths))
        return 1
    return 0 if s["images"] - s["failed"] + s["videos"] - s["videos_failed"] > 0 else 1


def write_video_tables(videos: list, timeline: Path | None, moments: str | None) -> list[Path]:
    """The timeline (when there are videos) and the moments table (when asked), people filled."""
    from ..outputs.sinks import write_moments, write_timeline

    written = []
    if videos and timeline is not None:
        written.append(write_timeline(videos, timeline))
    if moments:
        written.append(write_moments(videos, moments))
    return written


def run_options(a: argparse.Namespace):
    """The parsed arguments as an ``analysis.RunOptions``."""
    from ..pipeline.run import RunOptions

    return RunOptions(
        model=a.model, detector=a.detector, detector_options=detector_options(a), explain=a.explain,
        lime_samples=a.lime_samples, seed=a.seed, jobs=a.jobs, backend=a.backend, scheduler=a.scheduler,
        cache=a.cache, max_pixels=a.max_pixels, gallery=a.gallery, people=a.people,
        known_faces=a.known_faces, tolerance=a.tolerance, embeddings=a.embeddings,
        explain_keyframes=1 if a.explain and a.report else 0, progress=not a.quiet, log=log,
    )


def _counts(result) -> dict:
    from ..report.run import summary

    return summary(result)


def _summary_line(result) -> str:
    """One line for the terminal: images, videos, people."""
    s = _counts(result)
    parts = []
    if s["images"] or not s["videos"]:
        parts.append(f"{s['images']} image{'s' if s['images'] != 1 else ''}: {s['images_with_faces']} with faces, "
                     f"{s['faces']} face{'s' if s['faces'] != 1 else ''}, {s['images_without_faces']} without a "
                     f"face, {s['failed']} failed, in {s['seconds']:.1f} s")
    if result.info.get("cached"):
        parts.append(f"{result.info['cached']} reused from {result.options.cache}")
    if s["skipped"]:
        parts.append(f"{s['skipped']} other file{'s' if s['skipped'] != 1 else ''} skipped (not images or videos)")
    if s["videos"]:
        parts.append(f"{s['videos']} video{'s' if s['videos'] != 1 else ''}: {s['videos'] - s['videos_failed']} "
                     f"analysed, {s['videos_failed']} failed")
    if result.options.people:
        n = int(result.info.get("people") or 0)
        parts.append(f"{n} {'person' if n == 1 else 'people'}")
    return "; ".join(parts)


def add_parser(sub) -> None:
    from ..outputs.columns import RUN, help_text

    r = sub.add_parser(
        "run", help="faces, emotions and LIME heatmaps for photos and videos, in one shareable HTML report",
        description="Find every face in the images under PATH (folders are walked recursively), classify its "
        "emotion with the CNN, explain the prediction with LIME, and write an HTML report and/or CSV/JSON "
        "(one row per face; images without faces and files that failed are listed too). Videos found under "
        "PATH get an emotion timeline per face (PREFIX.timeline.csv beside the first output) and their own "
        "sections in the same report (filmstrip, per face a chart and a few keyframes); people are shared "
        "between photos and videos. Output paths are checked before any work. "
        "Exit status 0 unless nothing could be processed.",
        epilog=help_text(RUN, "columns of --csv/--json (one row per face, and one per file without one):")
        + "\n\nexample: batchemo run photos/ --report out/report.html --csv out/faces.csv",
        formatter_class=ManualFormatter,
    )
    r.add_argument("paths", nargs="+", metavar="PATH", help="photos, videos, or folders holding them")
    r.add_argument("--report", type=report_file, help="self-contained HTML report to write (.html)")
    r.add_argument("--csv", type=table_file,
                   help="table to write, one row per face (and per file without one, with its status "
                   "and reason), streamed as the run goes")
    r.add_argument("--json", type=table_file,
                   help="the same table as JSON records (for --csv and --json alike, the suffix decides "
                   "the format: .csv, .json, or .parquet with pyarrow: pip install batchemo[parquet])")
    add_detector(r)
    r.add_argument("--explain", action=argparse.BooleanOptionalAction, default=True,
                   help="LIME heatmap for every face (default: on)")
    add_lime(r)
    r.add_argument("--jobs", "-j", type=number(int, 1, MAX_JOBS), default=None, metavar="N",
                   help="worker processes, each with its own model (default: what pays here: one per core, at "
                   "most 8, and at most one per 16 photos: a worker's start-up costs more than a few photos save)")
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
    r.add_argument("--moments", type=table_file, metavar="FILE", help="also write the moments of the videos worth "
                   "jumping to (per person, the strongest moment of each emotion and each change of mood, with "
                   "times) as a table: .csv, .json or .parquet")
    add_cache(r)
    add_quiet(r)
    r.set_defaults(func=resumable(cmd_run))
