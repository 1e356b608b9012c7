"""dlib's face-embedding network as a TFLite flatbuffer: how ``models/face_embedding.int8.tflite`` is made.

Why: dlib runs its ResNet (``dlib_face_recognition_resnet_model_v1.dat``, 29 conv layers, 150x150 RGB
chip -> 128-d) at ~72 ms a face here (the dlib-bin wheel has no BLAS) and holds the GIL, so people made
a run 1.7x slower. The same weights on LiteRT's XNNPACK take ~6 ms a face, ~2 ms as int8. This module
reads dlib's own serialization (no dlib C++ needed), folds each ``affine`` into its convolution, rebuilds
the network in TensorFlow ops and converts it with int8 weights (dynamic range); embeddings are within
0.01 of dlib's (float32 weights: 1e-6; float16: 1e-3; ``tests/test_people.py``, docs/people.md).
Build-time only: it needs TensorFlow (``[train]``), and the analysis side only reads the flatbuffer it
writes (``faces.embed``). The model's author released it
into the public domain (github.com/davisking/dlib-models).

    python -m batchemo.faces.embedding_export [OUT.tflite]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .embed import CHIP
from .embed import FLATBUFFER as SHIPPED


class _Reader:
    """dlib's serialization primitives (dlib/serialize.h): packed ints, float_details, strings, tensors."""

    def __init__(self, data: bytes):
        self.b, self.pos = data, 0

    def int(self) -> int:
        head = self.b[self.pos]
        n = head & 0x0F
        v = int.from_bytes(self.b[self.pos + 1: self.pos + 1 + n], "little")
        self.pos += 1 + n
        return -v if head & 0x80 else v

    def float(self) -> float:  # float_details: mantissa * 2**exponent
        mantissa = self.int()
        return mantissa * 2.0 ** self.int()

    def str(self) -> str:
        n = self.int()
        self.pos += n
        return self.b[self.pos - n: self.pos].decode("latin1")

    def bool(self) -> bool:
        c = self.b[self.pos: self.pos + 1]
        self.pos += 1
        if c not in (b"0", b"1"):
            raise ValueError(f"not a dlib bool at byte {self.pos - 1}")
        return c == b"1"

    def tensor(self) -> np.ndarray:  # version, num_samples, k, nr, nc, then little-endian float32
        self.int()
        shape = [self.int() for _ in range(4)]
        count = int(np.prod(shape))
        a = np.frombuffer(self.b, "<f4", count, self.pos).copy()
        self.pos += 4 * count
        return a

    def alias(self) -> tuple[int, ...]:  # alias_tensor: version, then its 4 dims
        self.int()
        return tuple(self.int() for _ in range(4))

    def looks_like_str(self) -> bool:
        if self.b[self.pos] != 1:
            return False
        n = self.b[self.pos + 1]
        text = self.b[self.pos + 2: self.pos + 2 + n]
        return n >= 4 and all(chr(c).isalnum() or chr(c) == "_" for c in text)


def _details(r: _Reader) -> dict:
    """One computational layer's parameters (dlib/dnn/layers.h serialize), by its version string."""
    v = r.str()
    if v in ("con_4", "con_5", "con_6"):
        params = r.tensor()
        nf, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
        filters, _ = r.alias(), r.alias()
        [r.float() for _ in range(4)]  # learning-rate and weight-decay multipliers
        use_bias = r.bool() if v != "con_4" else True
        if v == "con_6":
            r.bool()
        return dict(kind="con", params=params, shape=filters, stride=(sy, sx), pad=(py, px), bias=use_bias)
    if v in ("affine_", "affine_2"):
        params, gamma, _ = r.tensor(), r.alias(), r.alias()
        mode = r.int()
        if v == "affine_2":
            r.bool()
        return dict(kind="affine", params=params, n=int(np.prod(gamma)), mode=mode)
    if v in ("relu_", "relu_2"):
        if v == "relu_2":
            r.bool()
        return dict(kind="relu")
    if v in ("max_pool_2", "avg_pool_2"):
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        return dict(kind=v[:3], size=(nr, nc), stride=(sy, sx), pad=(py, px))
    if v == "add_prev_":
        return dict(kind="add")
    if v in ("fc_2", "fc_3"):
        n_out, n_in, params = r.int(), r.int(), r.tensor()
        r.alias(), r.alias()
        bias_mode = r.int()
        [r.float() for _ in range(4)]
        if v == "fc_3":
            r.bool()
        return dict(kind="fc", params=params, n_in=n_in, n_out=n_out, bias_mode=bias_mode)
    raise ValueError(f"unexpected dlib layer {v!r} at byte {r.pos}")


def read_dlib_net(path: str | Path) -> tuple[list[float], list[dict]]:
    """(input means, layers in forward order) of a dlib ``loss_metric`` network file.

    The file nests: loss version and details, then one version per wrapper layer from the output inwards,
    the input layer, then each layer's details (and its empty training tensors) from the input outwards.
    """
    r = _Reader(Path(path).read_bytes())
    r.int()
    if not r.str().startswith("loss_metric"):
        raise ValueError(f"{path}: not a dlib metric-learning network")
    r.float(), r.float()
    while not r.looks_like_str():
        r.int()  # add_layer / tag / skip versions
    if r.str() != "input_rgb_image_sized":
        raise ValueError(f"{path}: expected input_rgb_image_sized")
    means = [r.float() for _ in range(3)]
    if (r.int(), r.int()) != (CHIP, CHIP):
        raise ValueError(f"{path}: expected a {CHIP}x{CHIP} input")
    layers, first = [], True
    while r.pos < len(r.b):
        layers.append(_details(r))
        r.bool(), r.bool(), r.bool()
        r.tensor(), r.tensor(), r.tensor()
        if first:  # the add_layer over the input (version 3) also keeps its sample expansion factor
            r.int()
            first = False
    return means, layers


def fold(layers: list[dict]) -> list[tuple]:
    """Ops for ``build``: each conv with its following per-channel affine folded in (w*g, b*g+beta)."""
    ops, i = [], 0
    while i < len(layers):
        d = layers[i]
        if d["kind"] == "con":
            nf, k, nr, nc = d["shape"]
            w = d["params"][: nf * k * nr * nc].reshape(nf, k, nr, nc).transpose(2, 3, 1, 0)  # -> HWIO
            b = d["params"][nf * k * nr * nc:] if d["bias"] else np.zeros(nf, np.float32)
            a = layers[i + 1]
            if a["kind"] != "affine" or a["mode"] != 0 or a["n"] != nf:
                raise ValueError(f"layer {i}: a convolution not followed by its per-channel affine")
            g, beta = a["params"][:nf], a["params"][nf:]
            ops.append(("conv", (w * g).astype(np.float32), (b * g + beta).astype(np.float32), d["stride"], d["pad"]))
            i += 2
            continue
        if d["kind"] == "fc":
            ops.append(("fc", d["params"].reshape(d["n_in"], d["n_out"])))
        else:
            ops.append((d["kind"], d.get("size"), d.get("stride")))
        i += 1
    return ops


def build(means: list[float], ops: list[tuple]):
    """A function (n, 150, 150, 3) float RGB 0-255 -> (n, 128) in TensorFlow ops, as dlib computes it.

    dlib's residual units: ``x -> conv,relu,conv -> + x``; a downsampling unit's shortcut is a 2x2/2
    average pool of ``x``. dlib's ``add_prev`` adds tensors of different sizes by zero-padding the smaller
    at the end (channels, bottom, right); convolutions with stride 2 have no padding.
    """
    import tensorflow as tf

    def pad_to(z, side, channels):
        return tf.pad(z, [[0, 0], [0, side - z.shape[1]], [0, side - z.shape[2]], [0, channels - z.shape[3]]])

    def forward(x):
        x = (x - np.asarray(means, np.float32)) / 256.0
        unit_in = None
        for j, op in enumerate(ops):
            if op[0] == "conv":
                if _starts_unit(ops, j):
                    unit_in = x
                _, w, b, stride, pad = op
                x = tf.pad(x, [[0, 0], [pad[0]] * 2, [pad[1]] * 2, [0, 0]]) if pad[0] else x
                x = tf.nn.conv2d(x, w, stride, "VALID") + b
            elif op[0] == "relu":
                x = tf.nn.relu(x)
            elif op[0] == "max":
                x = tf.nn.max_pool2d(x, op[1], op[2], "VALID")
            elif op[0] == "avg" and op[1] == (0, 0):  # avg_pool_everything
                x = tf.reduce_mean(x, [1, 2])
            elif op[0] == "avg":
                unit_in = tf.nn.avg_pool2d(unit_in, op[1], op[2], "VALID")
            elif op[0] == "add":
                side, ch = max(x.shape[1], unit_in.shape[1]), max(x.shape[3], unit_in.shape[3])
                x = pad_to(x, side, ch) + pad_to(unit_in, side, ch)
            elif op[0] == "fc":
                x = tf.matmul(x, op[1])
        return x

    return forward


def _starts_unit(ops: list[tuple], j: int) -> bool:
    """A residual unit starts at a conv after the stem's max pool or after the relu that ends a unit."""
    before = [op[0] for op in ops[max(j - 2, 0): j]]
    return before[-1:] == ["max"] or before == ["add", "relu"]


def export(source: str | Path, out: str | Path = SHIPPED) -> Path:
    """Convert dlib's network file ``source`` to an int8-weight flatbuffer at ``out`` (atomic write).

    int8 rather than float16 or float32 weights: 21 MB of memory a process rather than 43 or 53, and 3.3x
    faster, for distances within 0.01 of dlib's, which changed no grouping (docs/people.md)."""
    from ..core.runtime import quiet, require_tensorflow

    require_tensorflow("converting dlib's face-embedding network")
    with quiet():
        import tensorflow as tf
    forward = build(*_means_and_ops(source))
    holder = tf.Module()
    holder.fn = tf.function(forward, input_signature=[tf.TensorSpec([None, CHIP, CHIP, 3], tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([holder.fn.get_concrete_function()], holder)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights, float activations
    with quiet():
        data = conv.convert()
    from ..core.files import atomic_write_bytes

    return atomic_write_bytes(out, data)


def _means_and_ops(source: str | Path) -> tuple[list[float], list[tuple]]:
    means, layers = read_dlib_net(source)
    return means, fold(layers)


def main(argv: list[str] | None = None) -> int:
    from .detect import model_file

    args = sys.argv[1:] if argv is None else argv
    out = export(model_file("embedding"), args[0] if args else SHIPPED)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
