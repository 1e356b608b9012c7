"""A Keras network -> TFLite flatbuffer bytes (float32, or dynamic-range int8). This side imports TensorFlow.

Its own module so that both ``model.load_model`` (which converts a user's ``.keras`` once, when it comes
without flatbuffers) and ``export`` (which writes and measures them) can use it without importing each other.
"""
from __future__ import annotations

from typing import Callable

from ..core.records import ModelError
from ..core.runtime import quiet


def _import_tf():
    try:
        with quiet():  # absl / oneDNN banners, printed from C++ on import
            import tensorflow as tf
    except ImportError:
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
