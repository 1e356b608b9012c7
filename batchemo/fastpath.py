"""A cheaper forward pass for LIME: the same network, converted once to TensorFlow Lite with int8 weights.

LIME spends ~85% of its time in forward passes of the CNN on perturbed copies of one face. TensorFlow
Lite's dynamic-range quantisation (weights stored as int8, activations quantised on the fly per batch,
XNNPACK's int8 kernels) makes a pass about 3x cheaper on an AVX2 CPU. It needs no calibration data, so it is
built from the loaded model in about half a second, once per process and model, and kept in memory.

It is an approximation of the float network (probabilities differ by a few hundredths at most), so it
is never used to label a face: ``explain`` only uses it for a face when its top class (read as the card says) on
that face equals the label the float model shows, and falls back to the float model otherwise.

``tf.lite`` ships inside the ``tensorflow`` wheel batchemo already installs; where it is missing or the
conversion fails, ``quantized_forward`` returns None and the float model is used.
"""
from __future__ import annotations

import queue
import threading
import warnings
from typing import Callable

import numpy as np

_LOCK = threading.Lock()
_CACHE_ATTR = "_batchemo_tflite_int8"


def _dynamic_range(converter) -> None:
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic-range int8


def _convert(keras_model, configure: Callable = _dynamic_range) -> bytes:
    """The TFLite flatbuffer of ``keras_model``; ``configure(converter)`` sets its options (benchmarks/int8_speed.py
    compares others)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda t: keras_model(t, training=False),
                     input_signature=[tf.TensorSpec([None, 48, 48, 1], tf.float32)])
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    conv = tf.lite.TFLiteConverter.from_concrete_functions([frozen], keras_model)
    configure(conv)
    return conv.convert()


class _Int8Forward:
    """Callable: float32 (N, 48, 48, 1) in [0, 1] -> (N, 7) probabilities in CLASSES order.

    Interpreters are not thread-safe, so each call borrows one from a pool (and makes one when all are
    busy): two threads explaining two faces run on two cores (``invoke`` releases the GIL), and threads
    that come and go (joblib makes new ones per call) reuse the interpreters already built.
    """

    def __init__(self, flatbuffer: bytes, order: list[int], threads: int):
        self.flatbuffer, self.order, self.threads = flatbuffer, order, threads
        self._pool: queue.SimpleQueue = queue.SimpleQueue()

    def _new(self) -> list:
        import tensorflow as tf

        with warnings.catch_warnings():  # "deprecated, use ai_edge_litert": still shipped in TF 2.21
            warnings.simplefilter("ignore")
            it = tf.lite.Interpreter(model_content=self.flatbuffer, num_threads=self.threads)
        return [it, -1]  # the interpreter and the batch size it is allocated for

    def __call__(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        # Batches of 64: XNNPACK is as fast per face as with 1024, and the activations stay in cache.
        try:
            slot = self._pool.get_nowait()
        except queue.Empty:
            slot = self._new()
        try:
            it = slot[0]
            inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
            res = np.empty((len(x), len(self.order)), np.float32)
            for i in range(0, len(x), batch_size):
                chunk = np.ascontiguousarray(x[i: i + batch_size], dtype=np.float32)
                if slot[1] != len(chunk):
                    it.resize_tensor_input(inp, chunk.shape)
                    it.allocate_tensors()
                    slot[1] = len(chunk)
                it.set_tensor(inp, chunk)
                it.invoke()
                res[i: i + len(chunk)] = it.get_tensor(out)
        finally:
            self._pool.put(slot)
        return res[:, self.order]


def quantized_forward(model, threads: int = 2) -> Callable[[np.ndarray], np.ndarray] | None:
    """The int8 TensorFlow Lite forward pass of ``model`` (an EmotionModel), built once; None if unavailable."""
    cached = getattr(model, _CACHE_ATTR, "missing")
    if cached != "missing":
        return cached
    with _LOCK:
        cached = getattr(model, _CACHE_ATTR, "missing")
        if cached != "missing":
            return cached
        try:
            order = [list(model.card.classes).index(c) for c in model.classes]
            fwd = _Int8Forward(_convert(model.keras_model), order, threads)
            fwd(np.zeros((2, 48, 48, 1), np.float32))  # fail here, not in the middle of a batch
        except Exception:  # no tf.lite in this TensorFlow, or an op it cannot convert: use the float model
            fwd = None
        setattr(model, _CACHE_ATTR, fwd)
        return fwd


__all__ = ["quantized_forward"]
