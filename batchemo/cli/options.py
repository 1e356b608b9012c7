"""What every subcommand shares: messages, number validation, and the options that mean the same everywhere.

One helper per option family, so ``--lime-samples``, ``--jobs`` or the Haar settings cannot drift apart
between ``run``, ``video`` and ``audit``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from ..sources.walk import printable

#: The fewest LIME perturbations accepted (a heatmap from so few is rough, but a quick look can want one).
MIN_LIME_SAMPLES = 10


def err(msg: str) -> None:
    print(f"batchemo: error: {msg}", file=sys.stderr)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def number(kind=int, low: float | None = None, high: float | None = None, above: bool = False):
    """An argparse type: a finite number in [low, high] ((low, high] with ``above``), else a usage error.

    argparse puts the option's name before the message ("argument --lr: nan is not a finite number"), so
    a bad value is one line naming the option and exit 2, never a traceback or an hour of work on a NaN.
    """
    whole = "whole " if kind is int else ""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {whole}number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if low is not None and (value <= low if above else value < low):
            raise argparse.ArgumentTypeError(f"{text} is {'not above' if above else 'less than'} {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text} is more than {high:,}, the most this option takes")
        return value

    return parse


def at_least(least: float, kind=int, most: float | None = None):
    """An argparse type: a finite number >= ``least`` (and <= ``most``); see ``number``."""
    return number(kind, least, most)


class ManualFormatter(argparse.HelpFormatter):
    """argparse's wrapping for prose, kept as written for tables (paragraphs whose lines are indented)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = text.split("\n\n")
        return "\n\n".join(p if "\n  " in p else super(ManualFormatter, self)._fill_text(p, width, indent)
                             for p in paragraphs)


#: Upper bounds shared by options of the same meaning (the most any sane run asks for).
MAX_SEED = 2**32 - 1  # numpy's seeds
MAX_JOBS = 1024
MAX_LIME_SAMPLES = 100_000
REPORT_SUFFIXES = (".html", ".htm")
TABLE_SUFFIXES = (".csv", ".json", ".parquet")


def output_file(suffixes: tuple[str, ...], what: str):
    """An argparse type: an output path whose suffix is one that is really written (``--csv faces.xlsx``
    would get CSV text under a spreadsheet's name), so the mismatch is found before any work."""

    def parse(text: str):
        suffix = Path(text).suffix.lower()
        if suffix not in suffixes:
            accepted = ", ".join(suffixes[:-1]) + " or " + suffixes[-1] if len(suffixes) > 1 else suffixes[0]
            raise argparse.ArgumentTypeError(
                f"{printable(text)}: {what} is written as {accepted}, not {suffix or 'a name without a suffix'}")
        return text

    return parse


def report_file(text: str) -> str:
    return output_file(REPORT_SUFFIXES, "the report (HTML)")(text)


def table_file(text: str) -> str:
    return output_file(TABLE_SUFFIXES, "a table (its suffix picks the format)")(text)


def add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model file (.keras); default: the shipped model")


from ..pipeline.video import VIDEO_HAAR_OPTIONS  # noqa: E402  (the CLI may import any stage)

#: Haar's scaleFactor for video frames when none is given (video.VIDEO_HAAR_OPTIONS); photos use the
#: detector's own default (1.1, benchmarks/detect_quality.py).
VIDEO_SCALE_FACTOR = VIDEO_HAAR_OPTIONS["scale_factor"]


def add_detector(p: argparse.ArgumentParser) -> None:
    """--detector and the Haar cascade's settings (validated the same way for every command)."""
    from ..faces.detect import DETECTORS

    p.add_argument("--detector", choices=list(DETECTORS), default="auto",
                   help="face detector: auto (default: yunet, else hog where neither LiteRT nor TensorFlow runs), "
                   "yunet (libfacedetection's CNN on LiteRT: turned, profile, small and masked faces), hog "
                   "(dlib's HOG: frontal faces from ~32 px), haar (OpenCV's cascade) or cnn (dlib's MMOD CNN: "
                   "about 10 s a photo). The detector used is named in the report's settings")
    p.add_argument("--scale-factor", type=number(float, 1.01, 3.0),
                   help=f"Haar scaleFactor (default: 1.1 for photos, {VIDEO_SCALE_FACTOR} for video frames, a "
                   "speed-for-recall trade on long videos)")
    p.add_argument("--min-neighbors", type=number(int, 0, 100), default=5,
                   help="Haar minNeighbors (default: %(default)s)")


def detector_options(a: argparse.Namespace, video: bool = False) -> dict:
    """The detector settings the user gave (defaults filled in), for the API's ``detector_options``."""
    if a.detector != "haar":
        return {}
    options = {"min_neighbors": a.min_neighbors}
    if a.scale_factor or video:
        options["scale_factor"] = a.scale_factor or VIDEO_SCALE_FACTOR
    return options


def add_lime(p: argparse.ArgumentParser, what: str = "face") -> None:
    from ..explain.lime import LIME_SAMPLES

    p.add_argument("--lime-samples", type=number(int, MIN_LIME_SAMPLES, MAX_LIME_SAMPLES), default=LIME_SAMPLES,
                   metavar="N",
                   help=f"LIME perturbations per explained {what} (default: %(default)s)")
    p.add_argument("--seed", type=number(int, 0, MAX_SEED), default=0, help="LIME random seed (default: %(default)s)")


def add_people(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", action=argparse.BooleanOptionalAction, default=True,
                   help="group faces into people across the whole run (dlib's face embeddings, clustered): a "
                   "person column (person_1, person_2 ... in order of first appearance) and a People section in "
                   "the report (default: on)")
    p.add_argument("--known-faces", metavar="DIR",
                   help="name people: DIR holds one sub-folder of photos per person (DIR/Ada/1.jpg ...); faces "
                   "that match take that name, the others stay person_N")
    from ..people.cluster import TOLERANCE

    p.add_argument("--tolerance", type=number(float, 0.1, 2.0), default=TOLERANCE, metavar="DISTANCE",
                   help="how far apart (dlib embedding distance) two faces may be and still be one person. "
                   "Lower splits one person into two more often; higher merges different people, which "
                   "misleads more than a split, so raise it with care. Measured on 8 people: the same "
                   "person's faces at most 0.50 apart, different people at least 0.64 (default: %(default)s)")
    p.add_argument("--embeddings", action="store_true",
                   help="also write each face's 128-number identity embedding to the CSV/JSON (emb_0..emb_127). "
                   "Embeddings identify people: they are never in the report, and in tables only with this flag")


def load_known(a: argparse.Namespace):
    """The --known-faces folder as people.KnownFaces (None without it), its skipped photos logged: the same
    load ``batchemo run`` does (``analysis.known_faces``)."""
    from ..pipeline.run import RunOptions, known_faces

    return known_faces(RunOptions(people=a.people, known_faces=a.known_faces, detector=a.detector,
                                  detector_options=detector_options(a), log=log))


def add_jobs(p: argparse.ArgumentParser, default: int, what: str) -> None:
    p.add_argument("--jobs", "-j", type=number(int, 1, MAX_JOBS), default=default, metavar="N",
                   help=f"how many {what} run at once (default: %(default)s)")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def check_outputs(*paths: str | None, inputs: list[str] | tuple = ()) -> list[Path]:
    """Every output path given, checked before any work: OSError (one line naming the path) if two outputs
    are the same file, if one would replace an input of this run, or if it cannot be written."""
    from ..core.files import check_writable

    given = [Path(p) for p in paths if p]
    seen: dict[str, Path] = {}
    for out in given:
        real = os.path.realpath(out)
        if real in seen:
            raise OSError(f"{printable(str(out))}: given for two outputs of this run (the second would replace "
                          "the first): give each output its own name")
        seen[real] = out
        clash = replaced_input(out, inputs)
        if clash:
            raise OSError(f"{printable(str(out))}: is {clash}, which an output would replace: write it elsewhere")
    return [check_writable(p) for p in given]


def replaced_input(out: Path, inputs) -> str:
    """What input of the run ``out`` would replace ("the input victim.jpg", "a photo read from DIR"), or "".

    An output is refused when it resolves to a path given as input, or to a file the run reads inside an
    input folder (an image or a video there, hidden names aside). A new table or report written into the
    folder being analysed is not an input (the walk lists it as skipped), so ``run . --report r.html``
    stays allowed.
    """
    from ..sources.walk import is_image, is_video

    real = os.path.realpath(out)
    for p in inputs:
        if not p:
            continue
        top = os.path.realpath(p)
        if real == top:
            return f"the input {printable(str(p))}"
        inside = os.path.isdir(top) and real.startswith(top.rstrip(os.sep) + os.sep)
        if inside and (is_image(out) or is_video(out)):
            hidden = any(part.startswith(".") for part in Path(os.path.relpath(real, top)).parts)
            if not hidden:
                return f"a file the run reads in {printable(str(p))}"
    return ""


def check_inputs(paths: list[str]) -> None:
    """Every input path exists: found in the first second, not after the model's load."""
    for p in paths:
        if not os.path.lexists(p):
            raise FileNotFoundError(f"{printable(str(p))}: no such file or folder")


# ---------------------------------------------------------------- resuming an interrupted run
#: What main() says after Ctrl-C: how to continue, set by a command that can continue (None: nothing).
_on_interrupt = None


def interrupt_hint() -> str:
    """The line after "interrupted" (how much was done, how to continue), or ""."""
    try:
        return _on_interrupt() if _on_interrupt else ""
    except Exception:  # a hint must never hide the interruption itself
        return ""


def resume_folder(first_output: str | os.PathLike) -> Path:
    """The default resume cache of a run: ``.<name>.resume`` beside its first output (hidden, so a run
    whose outputs lie inside its inputs never reads it as input)."""
    out = Path(first_output)
    return out.parent / f".{out.name}.resume"


def add_cache(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", metavar="DIR",
                   help="keep each image's results in DIR, and keep DIR: later runs reuse them when files, model and "
                   "settings are unchanged (DIR holds each face's identity embedding: keep it as private as the "
                   "photos)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="without --cache, keep each finished image, and each video's checkpoints (every 10 s of "
                   "video), in .OUTPUT.resume/ beside the first output, so that the same command run again after "
                   "Ctrl-C, a kill or a crash continues where it stopped; removed when the run completes (default: on)")


def resumable(command):
    """Wrap ``run`` or ``video``: a.cache defaults to ``resume_folder`` of the first output (unless --no-resume),
    removed once the command returns normally; after Ctrl-C, main() says how much is done and how to continue."""
    import functools

    @functools.wraps(command)
    def wrapped(a: argparse.Namespace) -> int:
        global _on_interrupt
        first = next((p for p in (a.report, a.csv, a.json) if p), None)
        own = None
        if first and a.resume and not a.cache:
            own = resume_folder(first)
            a.cache = str(own)
        if a.cache:
            _on_interrupt = functools.partial(_resume_line, Path(a.cache), list(getattr(a, "paths", None) or a.videos),
                                              own is not None)
        rc = command(a)
        _on_interrupt = None
        if own is not None and rc in (0, 1):
            import shutil

            shutil.rmtree(own, ignore_errors=True)
        return rc

    return wrapped


def _resume_line(cache: Path, paths: list[str], own: bool) -> str:
    """What a stopped run keeps and how to continue it: "3 of 24 images are done and kept in DIR: ..."."""
    from ..sources.walk import walk

    if not cache.is_dir():
        return "nothing was finished yet; earlier outputs are untouched"
    found = walk(paths)
    images = sum(f.kind == "image" for f in found)
    videos = sum(f.kind == "video" for f in found)
    what = []
    if images:
        done = sum(1 for _ in cache.glob("*/*.pkl"))
        what.append(f"{min(done, images)} of {images} images are done" if own else
                    f"the finished images (of {images}) are kept")
    if videos:
        what.append(f"{videos} video{' is' if videos == 1 else 's are'} analysed up to "
                    f"{'its' if videos == 1 else 'their'} last checkpoint")
    text = " and ".join(what) or "what was finished is kept"
    return (f"{text}{' and kept' if own or videos else ''} in {printable(str(cache))}: run the same command "
            "again to continue where it stopped")


def log_problems(problems: list[dict], total: int, where: str) -> None:
    """The failed inputs on stderr, one line each (names escaped: a newline in one cannot split its line),
    then, when the list was cut (``total`` problems, failed and skipped, were met), how many were left out
    and where every one of them is."""
    listed = [p for p in problems if p["status"] != "skipped"]
    for p in listed:
        log(f"{p['status']}: {printable(str(p['path']))}: {printable(str(p['reason']))}")
    left = total - len(problems)
    if left > 0:
        log(f"... and {left:,} more failed or skipped files not listed here: {where} has a row for every one, "
            "with its status and reason")
