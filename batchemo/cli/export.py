"""``batchemo export``: a ``.keras`` model's TFLite flatbuffers, for the fast analysis runtime."""
from __future__ import annotations

import argparse

from .options import check_inputs, log


def cmd_export(a: argparse.Namespace) -> int:
    from ..core.runtime import require_tensorflow
    from ..emotions.export import export

    require_tensorflow("batchemo export")
    check_inputs([a.model] + ([a.data] if a.data else []))
    faces, name = None, ""
    if a.data:
        from ..sources.labelled import load_split

        data = load_split(a.data, "validation", split=a.split)
        faces, name = data.images, _data_name(a.data)
    export(a.model, faces, name, log=log)
    return 0


def _data_name(data: str) -> str:
    """The data set's own name (``fer2013/validation/``), never the machine's path to it."""
    from pathlib import Path

    p = Path(data)
    return "/".join(p.parts[-2:]) + "/" if p.is_dir() else p.name


def add_parser(sub) -> None:
    e = sub.add_parser(
        "export", help="write a .keras model's TFLite flatbuffers (float32 and int8) beside it",
        description="Convert MODEL.keras to MODEL.float32.tflite and MODEL.int8.tflite beside it, which run, "
        "run, video, audit and evaluate use without TensorFlow, and record them in its card. With DATA, the "
        "card also records how often each one's labels agree with the Keras model's on its validation faces. "
        "Needs TensorFlow (pip install 'batchemo[train]').",
    )
    e.add_argument("model", help="the .keras model file")
    e.add_argument("--data", help="labelled faces to measure agreement on: a folder with validation/<class>/, a "
                   "folder of <class>/ folders, or fer2013.csv")
    e.add_argument("--split", help="fer2013.csv split (default: PublicTest)")
    e.set_defaults(func=cmd_export)
