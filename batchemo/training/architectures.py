"""The trainable architectures: ``build(name)`` and the multiply-adds of a forward pass (``count_macs``).

``default`` is the shipped layout, ``seed`` the original project's network, ``wide`` a teacher for
distillation, ``mirror`` the mirror-symmetric network of ``batchemo.training.mirror``. Keras is imported
inside the functions, so importing this module is cheap.
"""
from __future__ import annotations

import numpy as np

from ..core.records import CLASSES, INPUT_SIZE

ARCHITECTURES = ("default", "seed", "wide", "mirror")


def build(arch: str = "default"):
    """A fresh, uncompiled Keras model of the named architecture."""
    if arch == "seed":
        return _build_seed()
    if arch == "default":
        return _build_default()
    if arch == "mirror":
        from . import mirror

        return mirror.build()
    if arch == "wide":
        return _build_wide()
    raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")


def _build_seed():
    """Exactly the seed's network: plain 3x3 convs, L2 1e-4, a 1x1 and a 4x4 conv as the classifier."""
    import keras
    from keras import layers

    reg = keras.regularizers.l2(1e-4)
    conv = dict(activation="relu", kernel_regularizer=reg)
    return keras.Sequential(
        [
            keras.Input((INPUT_SIZE, INPUT_SIZE, 1)),
            layers.Conv2D(32, 3, **conv),
            layers.Conv2D(64, 3, **conv),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, **conv),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, **conv),
            layers.MaxPooling2D(2),
            layers.Conv2D(6, 1, **conv),
            layers.Conv2D(len(CLASSES), 4, kernel_regularizer=reg),
            layers.Flatten(),
            layers.Activation("softmax"),
        ],
        name="seed",
    )


def _build_default():
    """Ours: a batch-normalised VGG-style net that pools early.

    Why this shape: on a 2-core CPU, time goes where activations are large, so the 48x48 stage has a
    single narrow conv and the width is spent at 12x12 and 6x6, where it is cheap. Batch norm lets a high
    learning rate converge in few epochs (CPU training is the bottleneck), and global average pooling keeps
    the head to a few thousand parameters. Measured (benchmarks/model_speed.py) faster than the seed's.
    """
    return _vgg("default", ((32,), (64,), (128, 128), (256, 256)), dropout=0.4)


def _build_wide():
    """A teacher for distillation: ``default``'s layout with 1.5x the width at 12x12 and 6x6 (192, 384).

    About 2x ``default``'s multiply-adds (mostly where activations are small, so training costs far less
    than 2x on a CPU). Only students ship; this is here so teachers can be trained with ``batchemo train``.
    """
    return _vgg("wide", ((32,), (64,), (192, 192), (384, 384)), dropout=0.5)


def _vgg(name: str, stages: tuple[tuple[int, ...], ...], dropout: float):
    """Batch-normalised 3x3 conv blocks, one stage per resolution (48, 24, 12, 6) with 2x2 pooling between,
    global average pooling, dropout and a softmax over CLASSES."""
    import keras
    from keras import layers

    reg = keras.regularizers.l2(1e-4)
    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 1))
    x = inp
    for k, widths in enumerate(stages):
        if k:
            x = layers.MaxPooling2D(2)(x)
        for filters in widths:
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    # float32 softmax even when training in mixed precision: probabilities keep their small values exact
    out = layers.Dense(len(CLASSES), activation="softmax", dtype="float32")(x)
    return keras.Model(inp, out, name=name)


def count_macs(km) -> int:
    """Multiply-adds of one forward pass of one face (convolutions and dense layers; flip TTA doubles it).

    Pooling, batch norm, activations and additions are not counted: they are a rounding error next to the
    convolutions; so are other layer types (none of batchemo's architectures has one that matters).
    """
    import keras

    total = 0
    for layer in km.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            oh, ow, oc = layer.output.shape[1:]
            total += oh * ow * kh * kw * oc
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            ic = layer.input.shape[-1]
            oh, ow, oc = layer.output.shape[1:]
            total += oh * ow * kh * kw * (ic // layer.groups) * oc
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.input.shape[1:])) * layer.units
        elif isinstance(layer, (keras.Model,)):
            total += count_macs(layer)
    return int(total)


