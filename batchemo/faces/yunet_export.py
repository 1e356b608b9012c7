"""YuNet's ONNX file -> the TFLite flatbuffers ``faces.yunet`` runs: how ``models/yunet_2023mar*.tflite`` are made.

Build time only (needs TensorFlow, ``pip install 'batchemo[train]'``, and ``pip install onnx``); nothing
downloads anything: give it OpenCV Zoo's ``face_detection_yunet_2023mar.onnx`` (MIT, Shiqi Yu; 232,589
bytes, sha256 EXPECTED_SHA256), which is checked.

    python -m batchemo.faces.yunet_export face_detection_yunet_2023mar.onnx OUT.tflite [--int8 PHOTOS]

The network (8 op types: Conv, Relu, MaxPool, Resize, Add, Transpose, Reshape, Sigmoid; 53,104 weights) is
rebuilt in Keras node by node from the ONNX graph, its weights copied, checked against OpenCV's DNN on the
ONNX (12 outputs within 1e-2; measured 3.4e-6), and converted with builtin TFLite ops only. Layout: every
tensor here is NHWC, so the ONNX's Transpose(0, 2, 3, 1) before each head's Reshape is the identity; a
stride-2 conv padded by 1 on every side is ZeroPadding2D(1) + 'valid' (TF's 'same' pads differently); the
nearest Resize (asymmetric, floor, x2) is one RESIZE_NEAREST_NEIGHBOR. The flatbuffer's input "input" is
[1, H, W, 3] float BGR 0-255 with H and W free; its 12 outputs keep the ONNX's names.

``--int8 PHOTOS`` quantizes weights and activations to int8 (input and outputs stay float), its ranges
calibrated on ``calibration(PHOTOS)``: the shipped ``yunet_2023mar.int8.tflite`` was calibrated on
``../shared/identities`` (photos the detection benchmarks never score), and rebuilds byte for byte.
"""
from __future__ import annotations

import hashlib
import sys

import numpy as np

EXPECTED_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
OUTPUTS = ["cls_8", "cls_16", "cls_32", "obj_8", "obj_16", "obj_32", "bbox_8", "bbox_16", "bbox_32",
           "kps_8", "kps_16", "kps_32"]


def build_keras(onnx_path: str):
    """The ONNX network as a Keras model (NHWC), weights copied."""
    import keras
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(onnx_path).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inp = keras.Input(shape=(None, None, 3), batch_size=1, name="input", dtype="float32")
    state = {"t": {"input": inp}, "c": {"input": 3}, "weights": [], "inits": inits}
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        _OPS[node.op_type](node, attrs, state)
    model = keras.Model(inp, [state["t"][o] for o in OUTPUTS], name="yunet_2023mar")
    for layer, ws in state["weights"]:
        layer.set_weights([w.astype(np.float32) for w in ws])
    return model


def _conv(node, a, st) -> None:
    from keras import layers

    w = st["inits"][node.input[1]]  # [O, I/group, kh, kw]
    b = st["inits"][node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
    k, stride, pad = a["kernel_shape"][0], a.get("strides", [1, 1])[0], a.get("pads", [0] * 4)[0]
    x, cin, cout, name = st["t"][node.input[0]], st["c"][node.input[0]], w.shape[0], _name(node)
    padding = "valid" if pad == 0 else "same" if stride == 1 and pad == k // 2 else None
    if padding is None:
        x, padding = layers.ZeroPadding2D(pad, name=name + "_pad")(x), "valid"
    if a.get("group", 1) == 1:
        layer = layers.Conv2D(cout, k, strides=stride, padding=padding, name=name)
        st["weights"].append((layer, [w.transpose(2, 3, 1, 0), b]))
    elif a["group"] == cin == cout:
        layer = layers.DepthwiseConv2D(k, strides=stride, padding=padding, name=name)
        st["weights"].append((layer, [w.transpose(2, 3, 0, 1), b]))
    else:
        raise NotImplementedError(f"grouped conv {a['group']} ({cin} -> {cout})")
    _set(node, st, layer(x), cout)


def _unary(make):
    def op(node, a, st) -> None:
        _set(node, st, make(node, a, st)(st["t"][node.input[0]]), st["c"][node.input[0]])
    return op


def _resize(node, a, st):
    scales = st["inits"][node.input[2]]
    if a["mode"] != b"nearest" or a["coordinate_transformation_mode"] != b"asymmetric" or scales[2] != scales[3]:
        raise NotImplementedError("only the nearest, asymmetric, square Resize of YuNet")
    return _nearest_upsample()(int(scales[2]), name=_name(node))


def _add(node, a, st) -> None:
    from keras import layers

    _set(node, st, layers.Add(name=_name(node))([st["t"][i] for i in node.input]), st["c"][node.input[0]])


def _transpose(node, a, st) -> None:
    if list(a["perm"]) != [0, 2, 3, 1]:
        raise NotImplementedError(f"Transpose {a['perm']}")
    _set(node, st, st["t"][node.input[0]], st["c"][node.input[0]])  # NCHW -> NHWC: ours already are


def _reshape(node, a, st) -> None:
    from keras import layers

    shape = st["inits"][node.input[1]]
    out = node.output[0]
    layer = layers.Reshape((-1, int(shape[2])), name=out if out in OUTPUTS else _name(node))
    _set(node, st, layer(st["t"][node.input[0]]), int(shape[2]))


def _set(node, st, tensor, channels: int) -> None:
    st["t"][node.output[0]], st["c"][node.output[0]] = tensor, channels


def _name(node) -> str:
    return "n_" + node.output[0].replace(".", "_")


def _nearest_upsample():
    """ONNX Resize(nearest, asymmetric, floor, integer scale) = repeating each pixel: TF's
    resize_nearest_neighbor without half-pixel centres, one op (Keras' UpSampling2D is ten)."""
    import keras
    import tensorflow as tf

    class NearestUpsample(keras.layers.Layer):
        def __init__(self, factor, **kw):
            super().__init__(**kw)
            self.factor = factor

        def call(self, x):
            hw = tf.shape(x)[1:3] * self.factor
            return tf.compat.v1.image.resize_nearest_neighbor(x, hw, align_corners=False, half_pixel_centers=False)

    return NearestUpsample


def _layers():
    from keras import layers

    return {
        "Conv": _conv, "Add": _add, "Transpose": _transpose, "Reshape": _reshape,
        "Relu": _unary(lambda n, a, st: layers.ReLU(name=_name(n))),
        "Sigmoid": _unary(lambda n, a, st: layers.Activation("sigmoid", name=_name(n))),
        "MaxPool": _unary(lambda n, a, st: layers.MaxPooling2D(a["kernel_shape"], strides=a["strides"], name=_name(n))),
        "Resize": _unary(_resize),
    }


class _Ops(dict):
    """Op type -> handler, made on first use (keras is imported only when exporting)."""

    def __missing__(self, key):
        self.update(_layers())
        if key not in self:
            raise NotImplementedError(f"ONNX op {key}")
        return self[key]


_OPS = _Ops()


def check_against_opencv(model, onnx_path: str) -> float:
    """The largest difference of the 12 raw outputs, Keras against OpenCV's DNN on the ONNX, random input."""
    import cv2

    net = cv2.dnn.readNetFromONNX(onnx_path)
    img = np.random.default_rng(0).integers(0, 256, (352, 640, 3)).astype(np.float32)
    net.setInput(cv2.dnn.blobFromImage(img))
    ref = net.forward(OUTPUTS)
    got = model(img[None], training=False)
    return max(float(np.abs(np.asarray(g) - r.reshape(np.asarray(g).shape)).max()) for g, r in zip(got, ref))


def convert(model, calibration=None) -> bytes:
    """Keras -> TFLite: one signature, input "input", the 12 outputs by their ONNX names, builtin ops only;
    int8 inside when ``calibration`` (an iterable of BGR float32 (H, W, 3) images) is given."""
    import contextlib
    import io

    import keras
    import tensorflow as tf

    named = keras.Model(model.inputs, dict(zip(OUTPUTS, model.outputs)), name=model.name)
    conv = tf.lite.TFLiteConverter.from_keras_model(named)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if calibration is not None:
        images = [_padded(img) for img in calibration]  # a list: the converter may read it more than once
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([img] for img in images)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    with contextlib.redirect_stdout(io.StringIO()):
        return conv.convert()


def _padded(img: np.ndarray) -> np.ndarray:
    """(1, H', W', 3): padded at the bottom and right to multiples of 32, as ``faces.yunet`` feeds it."""
    h, w = img.shape[:2]
    x = np.zeros((1, -(-h // 32) * 32, -(-w // 32) * 32, 3), np.float32)
    x[0, :h, :w] = img
    return x


def calibration(folder: str):
    """BGR float32 images whose activations set the int8 ranges, in a fixed order (a fixed flatbuffer):
    the folder's photos (``*.jpg``, any depth) larger than 256 px, scaled to 640 px long; crowds of its
    face crops (photos at most 256 px: LFW's 150 px) at 0.6, 0.4, 0.3 and 0.2 times (faces of about 36 to
    12 px) over scikit-image's scenes; those scenes alone; and the astronaut's face at about 50, 25 and 12 px
    tiled over coffee, upright and upside down at 0.4 times the light."""
    from pathlib import Path

    import cv2
    from skimage import data

    photos = []
    for path in sorted(str(p) for p in Path(folder).rglob("*.jpg")):
        bgr = cv2.imread(path)
        if bgr is None:
            raise SystemExit(f"{path}: not a readable JPEG (--int8 calibration photos)")
        photos.append(bgr[..., ::-1])
    crops = [im for im in photos if max(im.shape[:2]) <= 256]
    if not crops or len(crops) == len(photos):
        raise SystemExit(f"{folder}: --int8 needs photos larger than 256 px and face crops of 256 px or less")
    for im in photos:
        if max(im.shape[:2]) > 256:
            k = 640 / max(im.shape[:2])
            yield _bgr(cv2.resize(im, None, fx=k, fy=k, interpolation=cv2.INTER_AREA))
    for scene, k in zip(("coffee", "rocket", "chelsea", "astronaut"), (0.6, 0.4, 0.3, 0.2)):
        yield _bgr(_crowd(cv2.resize(getattr(data, scene)(), (640, 480)), crops, int(150 * k)))
    for name in ("astronaut", "camera", "coffee", "chelsea", "rocket", "brick", "grass", "hubble_deep_field"):
        yield _bgr(getattr(data, name)())
    for k in (0.5, 0.25, 0.125):
        small = cv2.resize(data.astronaut(), None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        canvas = cv2.resize(data.coffee(), (640, 480))
        for y in range(0, 480 - small.shape[0] + 1, small.shape[0]):
            for x in range(0, 640 - small.shape[1] + 1, small.shape[1] * 2):
                canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        yield _bgr(canvas)
        yield _bgr(canvas)[::-1, ::-1] * 0.4


def _crowd(canvas: np.ndarray, crops: list, side: int) -> np.ndarray:
    """``canvas`` with ``crops`` pasted at ``side`` px in staggered rows, a third of a side apart."""
    import cv2

    j = 0
    for y in range(0, canvas.shape[0] - side + 1, side + side // 3):
        for x in range(j % 3 * side // 3, canvas.shape[1] - side + 1, side + side // 2):
            face = crops[j % len(crops)]
            canvas[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
            j += 1
    return canvas


def _bgr(rgb: np.ndarray) -> np.ndarray:
    rgb = np.stack([rgb] * 3, -1) if rgb.ndim == 2 else rgb[..., :3]
    return np.ascontiguousarray(rgb[..., ::-1]).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ..core.files import atomic_write_bytes

    ap = argparse.ArgumentParser(prog="python -m batchemo.faces.yunet_export")
    ap.add_argument("onnx")
    ap.add_argument("out")
    ap.add_argument("--int8", metavar="PHOTOS", help="quantize to int8, calibrated on this folder's photos")
    args = ap.parse_args(argv)
    onnx_path, out = args.onnx, args.out
    sha = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    if sha != EXPECTED_SHA256:
        raise SystemExit(f"{onnx_path}: sha256 {sha}, not OpenCV Zoo's face_detection_yunet_2023mar.onnx")
    model = build_keras(onnx_path)
    diff = check_against_opencv(model, onnx_path)
    if diff > 1e-2:
        raise SystemExit(f"the rebuilt network differs from OpenCV's by {diff}")
    atomic_write_bytes(out, convert(model, calibration(args.int8) if args.int8 else None))
    print(f"wrote {out} ({model.count_params()} weights; largest difference from OpenCV's DNN {diff:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
