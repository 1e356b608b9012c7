"""``.keras`` -> TFLite flatbuffers for the analysis runtime (``batchemo.runtime``). This side imports TensorFlow.

``export`` writes ``<stem>.float32.tflite`` (the network as it is) and ``<stem>.int8.tflite``
(dynamic-range int8: weights stored as int8, activations quantised on the fly per batch; no calibration
data needed, ~3x cheaper per pass on an AVX2 CPU) beside the ``.keras`` file, and records in its card the
``.keras`` file's SHA-256 (so a retrained model never runs stale flatbuffers) and, given labelled faces,
how often each flatbuffer's label (read as the card says) agrees with the Keras model's.

``model.load_model`` does the same conversion once, with no agreement measured, for a ``.keras`` file
that comes without flatbuffers (``model._convert_and_cache``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.runtime import KINDS, beside, digest, write_flatbuffers
from .tflite import convert


@dataclass
class Exported:
    """What ``export`` wrote: the flatbuffers by kind, and the card's ``export`` record."""

    paths: dict[str, Path]
    record: dict


def _agreement(model, flatbuffers: dict[str, bytes], faces: np.ndarray) -> dict[str, dict]:
    """Per kind: the share of ``faces`` (uint8 (N, 48, 48)) whose label, read as the card says, is the Keras
    model's, and the largest difference of any probability."""
    from ..core.runtime import Reordered, TFLiteForward
    from .model import EmotionModel

    want = model.predict(faces)
    out = {}
    for kind, fb in flatbuffers.items():
        fwd = Reordered(TFLiteForward(fb, kind=kind), list(range(len(model.classes))))
        lite = EmotionModel(None, model.card, model.path, forward=fwd)
        got = lite.predict(faces)
        out[kind] = {"label_agreement": round(float((got.argmax(1) == want.argmax(1)).mean()), 5),
                     "max_probability_difference": float(f"{np.abs(got - want).max():.2g}"),
                     "faces": int(len(faces))}
    return out


def export(model_path: str | os.PathLike, faces: np.ndarray | None = None, data_name: str = "",
           out: Path | None = None, log: Callable[[str], None] | None = None) -> Exported:
    """Write the float32 and int8 flatbuffers of a ``.keras`` model beside it (or in ``out``, a folder) and
    record them in its card (created when missing).

    ``faces``: uint8 (N, 48, 48) labelled-set faces (FER2013 validation) on which each flatbuffer's labels
    are compared with the Keras model's, recorded as ``export[kind]["label_agreement"]``; ``data_name``
    names that set in the record.
    """
    from .model import ModelCard, load_keras

    model_path = Path(model_path)
    model = load_keras(model_path)  # the BatchNorm-folded inference copy: what the flatbuffers hold
    fbs = {kind: convert(model.keras_model, kind) for kind in KINDS}
    sha = digest(model_path)
    record = {"keras_sha256": sha, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "converter": "tf.lite.TFLiteConverter (int8: dynamic range)"}
    for kind in KINDS:
        record[kind] = {"file": beside(model_path)[kind].name, "bytes": len(fbs[kind])}
    if faces is not None and len(faces):
        for kind, agreed in _agreement(model, fbs, np.asarray(faces, np.uint8)).items():
            record[kind].update(agreed, data=data_name)
    paths = _write(model_path, fbs, out)
    card = ModelCard.load(model_path) or model.card
    card.export = record
    card.save(model_path if out is None else Path(out) / model_path.name)
    if log:
        for kind in KINDS:
            agreed = record[kind].get("label_agreement")
            log(f"wrote {paths[kind]}" + (f" (labels as the Keras model's on {agreed:.2%} of "
                                          f"{record[kind]['faces']} faces)" if agreed is not None else ""))
    return Exported(paths, record)


def _write(model_path: Path, fbs: dict[str, bytes], out: Path | None) -> dict[str, Path]:
    return write_flatbuffers(beside(model_path) if out is None else beside(Path(out) / model_path.name), fbs)


__all__ = ["export", "convert", "Exported"]
