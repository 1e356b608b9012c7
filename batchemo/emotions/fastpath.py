"""A cheaper forward pass for LIME: the same network as a TFLite flatbuffer with int8 weights.

LIME spends ~85% of its time in forward passes of the CNN on perturbed copies of one face. TensorFlow
Lite's dynamic-range quantisation (weights stored as int8, activations quantised on the fly per batch,
XNNPACK's int8 kernels) makes a pass about 3x cheaper on an AVX2 CPU. It needs no calibration data.

It is an approximation of the float network (probabilities differ by a few hundredths at most), so it
is never used to label a face: ``explain`` only uses it for a face when its top class (read as the card says) on
that face equals the label the float model shows, and falls back to the float model otherwise.

A model loaded on LiteRT brings its int8 flatbuffer (``batchemo export`` writes it, ``model.int8``). A
Keras model (the TensorFlow fallback) is converted here, once per process and model, in about half a second.
Where a model has no int8 pass, ``quantized_forward`` returns None and says why in ``unavailable(model)``.
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from .tflite import convert as _export_convert

_LOCK = threading.Lock()
_CACHE_ATTR = "_batchemo_tflite_int8"
_WHY_ATTR = "_batchemo_int8_unavailable"


def _convert(keras_model, configure: Callable | str = "int8") -> bytes:
    """The TFLite flatbuffer of ``keras_model`` (``tflite.convert``; kept for benchmarks/int8_speed.py)."""
    return _export_convert(keras_model, configure)


def _Int8Forward(flatbuffer: bytes, order: list[int], threads: int):  # noqa: N802 (the old class's name)
    """An int8 flatbuffer's pass in CLASSES order, on a pool of interpreters (``runtime.TFLiteForward``)."""
    from ..core.runtime import Reordered, TFLiteForward

    return Reordered(TFLiteForward(flatbuffer, threads, kind="int8"), order)


def unavailable(model) -> str | None:
    """Why ``model`` has no int8 pass (None when it has one, or when none was asked for yet)."""
    return getattr(model, _WHY_ATTR, None)


def quantized_forward(model, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray] | None:
    """The int8 TFLite forward pass of ``model`` (an EmotionModel) in CLASSES order, built once; None if it has
    none (a LiteRT model exported without one; a Keras model TensorFlow cannot convert: ``unavailable``)."""
    if getattr(model, "runtime", "keras") == "litert":
        if model.int8 is None:
            setattr(model, _WHY_ATTR, "the model has no int8 flatbuffer")
        return model.int8
    cached = getattr(model, _CACHE_ATTR, "missing")
    if cached != "missing":
        return cached
    with _LOCK:
        cached = getattr(model, _CACHE_ATTR, "missing")
        if cached != "missing":
            return cached
        order = [list(model.card.classes).index(c) for c in model.classes]
        try:
            flatbuffer = _convert(model.keras_model)
        except Exception as e:  # an op TensorFlow Lite cannot convert: LIME uses the float model
            setattr(model, _WHY_ATTR, f"int8 conversion failed ({type(e).__name__})")
            fwd = None
        else:
            fwd = _Int8Forward(flatbuffer, order, threads)  # a broken flatbuffer raises here, on purpose
        setattr(model, _CACHE_ATTR, fwd)
        return fwd


__all__ = ["quantized_forward", "unavailable"]
