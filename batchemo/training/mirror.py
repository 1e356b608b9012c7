"""A mirror-symmetric CNN: the same answer for a face and its mirror image, in one forward pass.

Why: flip test-time augmentation (the mean of the network on a face and on its mirror image) buys ~2
points of accuracy, but doubles every forward pass, and LIME makes ~1,000 of them per explanation. A
network that is mirror-symmetric by construction *is* its own flip average: no TTA, half the passes.

How (a group-equivariant CNN for the left-right flip, Cohen & Welling 2016): every conv layer has half
its output channels free; the other half use the same kernels mirrored left-right (with the input
channels' two halves swapped after the first layer). Flipping the input then flips every feature map and
swaps the two halves of the channels. Batch norm shares its statistics across the two halves, and the
head averages them after global pooling, so the class probabilities do not change under a flip.

Trained as ``build("mirror")``: ``default``'s layout and multiply-adds, with half the free parameters.
It ships as ``plain_copy``: a plain chain of Conv2D/ReLU/pooling/Dense layers with the mirrored kernels
written out and batch norm folded in, which loads, converts to TensorFlow Lite and runs like any other.
``unfold`` turns such a file back into the trainable network, for fine-tuning a shipped model.
"""
from __future__ import annotations

import numpy as np

from ..core.records import CLASSES, INPUT_SIZE

#: ``default``'s stages: output channels per conv, one tuple per resolution (48, 24, 12, 6).
STAGES = ((32,), (64,), (128, 128), (256, 256))


def custom_layers():
    """The two custom layers, defined (and registered with keras, so that a checkpoint of the trainable
    network reloads) on first use: importing batchemo does not import keras."""
    global MirrorConv2D, PairedBatchNorm
    if "MirrorConv2D" not in globals():
        MirrorConv2D, PairedBatchNorm = _mirror_conv(), _paired_batch_norm()
    return MirrorConv2D, PairedBatchNorm


def _mirror_conv():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable("batchemo")
    class MirrorConv2D(keras.layers.Layer):
        """3x3 'same' conv whose second half of output channels is the first half mirrored."""

        def __init__(self, filters: int, first: bool = False, l2: float = 1e-4, **kw):
            super().__init__(**kw)
            if filters % 2:
                raise ValueError("a mirror conv needs an even number of filters")
            self.filters, self.first, self.l2 = filters, first, l2

        def build(self, input_shape):
            cin = input_shape[-1]
            self.kernel = self.add_weight(
                name="kernel", shape=(3, 3, cin, self.filters // 2), initializer="he_uniform",
                regularizer=keras.regularizers.l2(self.l2) if self.l2 else None)

        def full_kernel(self, k):
            mirrored = ops.flip(k, axis=1)  # left-right
            if not self.first:  # the input's two channel halves swap under a flip
                half = k.shape[2] // 2
                mirrored = ops.concatenate([mirrored[:, :, half:], mirrored[:, :, :half]], axis=2)
            return ops.concatenate([k, mirrored], axis=3)

        def call(self, x):
            k = ops.cast(self.full_kernel(self.kernel), x.dtype)
            return ops.conv(x, k, strides=1, padding="same")

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], self.filters)

        def get_config(self):
            return {**super().get_config(), "filters": self.filters, "first": self.first, "l2": self.l2}

    return MirrorConv2D


def _paired_batch_norm():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable("batchemo")
    class PairedBatchNorm(keras.layers.Layer):
        """Batch norm with one set of statistics and parameters per mirrored pair of channels."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.bn = keras.layers.BatchNormalization(axis=-1)

        def build(self, input_shape):
            self.bn.build((*input_shape[:-1], 2, input_shape[-1] // 2))

        def call(self, x, training=None):
            shape = ops.shape(x)
            c = x.shape[-1]
            y = self.bn(ops.reshape(x, (shape[0], shape[1], shape[2], 2, c // 2)), training=training)
            return ops.reshape(y, (shape[0], shape[1], shape[2], c))

        def compute_output_shape(self, input_shape):
            return input_shape

    return PairedBatchNorm


def build(dropout: float = 0.4):
    """The trainable mirror-symmetric network (``default``'s layout)."""
    import keras
    from keras import layers

    conv, bn = custom_layers()
    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 1))
    x, first = inp, True
    for k, widths in enumerate(STAGES):
        if k:
            x = layers.MaxPooling2D(2)(x)
        for filters in widths:
            x = conv(filters, first=first)(x)
            x = bn()(x)
            x = layers.ReLU()(x)
            first = False
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Reshape((2, STAGES[-1][-1] // 2))(x)
    x = layers.GlobalAveragePooling1D()(x)  # the mean of each mirrored pair: flip-invariant features
    x = layers.Dropout(dropout)(x)
    out = layers.Dense(len(CLASSES), activation="softmax", dtype="float32")(x)
    return keras.Model(inp, out, name="mirror")


def plain_copy(km):
    """The same function as a plain chain of standard layers: mirrored kernels written out, batch norm
    folded into each conv, the pair mean folded into the Dense layer. What ships."""
    import keras
    from keras import layers

    conv_cls, bn_cls = custom_layers()
    convs = [layer for layer in km.layers if isinstance(layer, conv_cls)]
    bns = [layer for layer in km.layers if isinstance(layer, bn_cls)]
    dense = [layer for layer in km.layers if isinstance(layer, keras.layers.Dense)][-1]
    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 1))
    x, weights, i = inp, [], 0
    for k, widths in enumerate(STAGES):
        if k:
            x = layers.MaxPooling2D(2)(x)
        for filters in widths:
            c, b = convs[i], bns[i].bn
            kernel = np.asarray(c.full_kernel(c.kernel.numpy()))
            scale = b.gamma.numpy() / np.sqrt(b.moving_variance.numpy() + b.epsilon)
            shift = b.beta.numpy() - b.moving_mean.numpy() * scale
            weights.append([kernel * np.tile(scale, 2), np.tile(shift, 2)])
            x = layers.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
            x = layers.ReLU()(x)
            i += 1
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(len(CLASSES), activation="softmax", name="classes")(x)
    plain = keras.Model(inp, out, name="mirror")
    for layer, w in zip([layer for layer in plain.layers if isinstance(layer, keras.layers.Conv2D)], weights):
        layer.set_weights(w)
    w, bias = dense.get_weights()
    plain.get_layer("classes").set_weights([np.concatenate([w, w]) / 2.0, bias])
    return plain


def _differ(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    """Whether two halves that a mirror model holds equal differ beyond float round-off (relative to their size)."""
    return bool(np.abs(a - b).max() > tol * max(np.abs(a).max(), np.abs(b).max(), 1.0))


def unfold(plain, x: np.ndarray, tol: float = 1e-5):
    """The trainable mirror network that ``plain_copy`` turns into ``plain``: the inverse of the fold, so that
    a shipped mirror model (its run's checkpoint gone) can be fine-tuned again.

    The fold forgets how each conv's scale was split between kernel and batch norm, and the statistics that
    batch norm normalised by; the function itself survives. Unfolding gives each kernel pair the root-mean-
    square of a fresh He initialisation (so Adam's steps are as large, relative to the weights, as when the
    network first trained), measures each pair's statistics on ``x`` (training faces as the network reads
    them: ``model.preprocess``'s float32 (N, 48, 48, 1)), and sets gamma and beta so that batch norm undoes
    exactly that: ``plain_copy(unfold(plain, x))`` computes ``plain``'s function, and in training mode a
    batch like ``x`` sees it too.
    """
    import keras

    conv_cls, bn_cls = custom_layers()
    net = build()
    convs = [layer for layer in net.layers if isinstance(layer, conv_cls)]
    bns = [layer for layer in net.layers if isinstance(layer, bn_cls)]
    pconvs = [layer for layer in plain.layers if isinstance(layer, keras.layers.Conv2D)]
    dense = [layer for layer in plain.layers if isinstance(layer, keras.layers.Dense)]
    if len(pconvs) != len(convs) or len(dense) != 1:
        raise ValueError(f"{len(pconvs)} convolutions and {len(dense)} dense layers, not the mirror "
                         f"network's {len(convs)} and 1: not a mirror model")
    halves = _free_halves(convs, pconvs, tol)
    sums = _pre_bias_moments(plain, pconvs, halves, x)
    for (n, s, q), c, b, (k, bias) in zip(sums, convs, bns, halves):
        _set_pair(c, b, k, bias, n, s, q)
    w, bias = dense[0].get_weights()
    half = w.shape[0] // 2
    if _differ(w[:half], w[half:], tol):
        raise ValueError("its classifier weighs a mirrored pair unequally; not a mirror model")
    net.layers[-1].set_weights([2.0 * w[:half], bias])
    return net


def _free_halves(convs, pconvs, tol: float) -> list:
    """Each folded conv's free half of kernels and its full bias, checked to be a mirror pair."""
    halves = []
    for c, layer in zip(convs, pconvs):
        weights = layer.get_weights()
        if len(weights) != 2 or weights[0].shape[-1] != c.filters or layer.get_config()["activation"] != "linear":
            raise ValueError(f"{layer.name} is not a folded mirror conv (a biased, linear {c.filters}-channel "
                             f"one); not a mirror model")
        kernel, bias = weights
        half = c.filters // 2
        if _differ(np.asarray(c.full_kernel(kernel[..., :half])), kernel, tol):
            raise ValueError(f"{layer.name}'s kernels are not mirror pairs; not a mirror model")
        if _differ(bias[:half], bias[half:], tol):
            raise ValueError(f"{layer.name}'s biases are not mirror pairs; not a mirror model")
        halves.append((kernel[..., :half], bias))
    return halves


def _pre_bias_moments(plain, pconvs, halves, x: np.ndarray) -> list:
    """Per conv, (count, sum, sum of squares) of its pre-bias output over ``x``, pooled per mirror pair."""
    import keras

    probe = keras.Model(plain.input, [layer.output for layer in pconvs])  # each conv's output, before its ReLU
    sums = None
    for start in range(0, len(x), 256):  # pooled moments, a batch at a time (the early maps are large)
        outs = probe(x[start:start + 256], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        moments = []
        for out, (_, bias) in zip(outs, halves):
            z = np.asarray(out, np.float64) - bias  # pre-bias: what batch norm sees
            z = z.reshape(-1, 2, z.shape[-1] // 2)  # the pair's two halves: one set of statistics
            moments.append((z.shape[0] * 2, z.sum((0, 1)), (z * z).sum((0, 1))))
        sums = moments if sums is None else [(n + a, s + b, q + c) for (n, s, q), (a, b, c) in zip(sums, moments)]
    return sums


def _set_pair(c, b, k: np.ndarray, bias: np.ndarray, n, s, q) -> None:
    """A mirror conv ``c`` and its batch norm ``b`` set to compute the folded pair (kernel half ``k``,
    ``bias``) with He-sized kernels, batch norm undoing the measured statistics (count, sum, squares)."""
    he_rms = np.sqrt(2.0 / (9 * k.shape[2]))
    scale = np.sqrt((k.astype(np.float64) ** 2).mean((0, 1, 2))) / he_rms  # kernel = k / scale
    scale = np.where(scale > 0, scale, 1.0)
    mean, var = s / n / scale, np.maximum(q / n - (s / n) ** 2, 0.0) / scale ** 2  # of conv(x, k / scale)
    eps = b.bn.epsilon
    c.kernel.assign((k / scale).astype(np.float32))
    b.bn.gamma.assign((scale * np.sqrt(var + eps)).astype(np.float32))  # gamma / sqrt(var + eps) = scale
    b.bn.beta.assign((bias[:k.shape[-1]] + mean * scale).astype(np.float32))  # beta - mean * scale = bias
    b.bn.moving_mean.assign(mean.astype(np.float32))
    b.bn.moving_variance.assign(var.astype(np.float32))


__all__ = ["build", "plain_copy", "unfold", "custom_layers", "STAGES"]
