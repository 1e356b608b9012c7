"""The ``batchemo`` command line: a thin layer over the Python API, one module per command family.

Every expected failure (bad path, bad data, bad model) is one line on stderr and a non-zero exit,
never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from .options import err

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_parser() -> argparse.ArgumentParser:
    from . import audit, export, run, train, video

    p = argparse.ArgumentParser(
        prog="batchemo",
        description="Faces, emotions and LIME explanations for whole collections of photos and videos.",
    )
    p.add_argument("--version", action="version", version=f"batchemo {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run.add_parser(sub)
    video.add_parser(sub)
    audit.add_parser(sub)
    train.add_parsers(sub)
    export.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from ..core.heap import bound_heap

    bound_heap()  # before any thread starts: memory that does not grow with a long video
    from ..emotions.model import ModelError
    from ..faces.detect import DetectorUnavailable
    from ..faces.embed import PeopleUnavailable
    from ..sources.labelled import DatasetError
    from .options import interrupt_hint
    from .train import TrainingError

    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed escaped, never a crash
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    args = build_parser().parse_args(argv)
    known = (DatasetError, ModelError, OSError, ValueError, DetectorUnavailable, TrainingError, PeopleUnavailable)
    try:
        return args.func(args)
    except known as e:
        err(" ".join(str(e).splitlines()) or type(e).__name__)  # one line, always
        return 2
    except KeyboardInterrupt:
        hint = interrupt_hint()
        err("interrupted" + (f": {hint}" if hint else ""))
        return 130


if __name__ == "__main__":
    sys.exit(main())
