"""``.keras`` -> TFLite flatbuffers for the analysis runtime (``batchemo.runtime``). This side imports TensorFlow.

``export`` writes ``<stem>.float32.tflite`` (the network as it is) and ``<stem>.int8.tflite``
(dynamic-range int8: weights stored as int8, activations quantised on the fly per batch; no calibration
data needed, ~3x cheaper per pass on an AVX2 CPU) beside the ``.keras`` file, and records in its card the
``.keras`` file's SHA-256 (so a retrained model never runs stale flatbuffers) and, given labelled faces,
how often each flatbuffer's label (read as the card says) agrees with the Keras model's.

``convert_and_cache`` is what ``load_model`` does, once, for a ``.keras`` file without flatbuffers: the same
conversion with no agreement measured, written beside the file when its folder is writable, else to the
user cache (``runtime.cache_dir``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .runtime import KINDS, beside, cache_dir, cached, digest, quiet


def _import_tf():
    try:
        with quiet():  # absl / oneDNN banners, printed from C++ on import
            import tensorflow as tf
    except ImportError:
        from .model import ModelError

        raise ModelError("converting a .keras model needs TensorFlow: pip install 'batchemo[train]'") from None
    return tf


def _dynamic_range(converter) -> None:
    tf = _import_tf()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic-range int8


def _float32(converter) -> None:
    pass


CONFIGURE: dict[str, Callable] = {"float32": _float32, "int8": _dynamic_range}


def convert(keras_model, configure: Callable | str = "float32") -> bytes:
    """The TFLite flatbuffer of ``keras_model`` for a batch of any size; ``configure`` is a kind in ``KINDS``
    or a function setting the converter's options (benchmarks/int8_speed.py compares others)."""
    tf = _import_tf()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    configure = CONFIGURE[configure] if isinstance(configure, str) else configure
    fn = tf.function(lambda t: keras_model(t, training=False),
                     input_signature=[tf.TensorSpec([None, 48, 48, 1], tf.float32)])
    with quiet():
        frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
        conv = tf.lite.TFLiteConverter.from_concrete_functions([frozen], keras_model)
        configure(conv)
        return conv.convert()


@dataclass
class Exported:
    """What ``export`` wrote: the flatbuffers by kind, and the card's ``export`` record."""

    paths: dict[str, Path]
    record: dict


def _agreement(model, flatbuffers: dict[str, bytes], faces: np.ndarray) -> dict[str, dict]:
    """Per kind: the share of ``faces`` (uint8 (N, 48, 48)) whose label, read as the card says, is the Keras
    model's, and the largest difference of any probability."""
    from .model import EmotionModel
    from .runtime import Reordered, TFLiteForward

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
    from .outputs import atomic_write_bytes

    paths = beside(model_path) if out is None else beside(Path(out) / model_path.name)
    for kind, fb in fbs.items():
        atomic_write_bytes(paths[kind], fb)
    return paths


def convert_and_cache(model_path: str | os.PathLike) -> tuple[dict[str, Path], str]:
    """Convert a ``.keras`` file without flatbuffers, once: beside it (its card gets the export record) when
    its folder is writable, else in the user cache. Returns the paths and a phrase saying where."""
    from .model import ModelCard, load_keras

    model_path = Path(model_path)
    model = load_keras(model_path)
    fbs = {kind: convert(model.keras_model, kind) for kind in KINDS}
    sha = digest(model_path)
    record = {"keras_sha256": sha, "converter": "tf.lite.TFLiteConverter (int8: dynamic range)"}
    folder = model_path.parent
    if os.access(folder, os.W_OK) and (not ModelCard.path_for(model_path).exists()
                                       or os.access(ModelCard.path_for(model_path), os.W_OK)):
        try:
            paths = _write(model_path, fbs, None)
            card = ModelCard.load(model_path) or model.card
            card.export = dict(card.export or {}, **record)
            card.save(model_path)
            return paths, f"beside it, in {folder}"
        except OSError:
            pass  # a read-only mount that says otherwise: fall through to the user cache
    paths = cached(sha)
    from .outputs import atomic_write_bytes

    for kind, fb in fbs.items():
        atomic_write_bytes(paths[kind], fb)
    model.card.export = record
    model.card.save(cache_dir() / f"{sha[:32]}.keras")  # a card for a model that came without one
    return paths, f"in {cache_dir()}"


__all__ = ["export", "convert", "convert_and_cache", "Exported"]
