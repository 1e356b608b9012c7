"""The 128-d identity embedding of aligned face chips: dlib's ResNet, run on LiteRT.

Why: dlib's own forward pass takes ~72 ms a face here and holds the GIL; the same network as a shipped
flatbuffer (``models/face_embedding.int8.tflite``, int8 weights, made by ``embedding_export``) takes ~2 ms
on LiteRT and ~21 MB of memory. Its embeddings, and the distances between them, are within 0.01 of
dlib's (measured on 68 real faces: at most 0.009), against a gap of 0.14 between the same person's
farthest faces and different people's nearest (docs/people.md): ``people.TOLERANCE``, measured on dlib's
embeddings, holds, and every grouping of benchmarks/people_quality.py is unchanged. Where LiteRT or the
flatbuffer is missing, or ``BATCHEMO_EMBEDDING=dlib`` is set (benchmarks compare the two side by side),
dlib computes them as before.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

#: The shipped flatbuffer: dlib's network with int8 weights (dynamic range), converted by embedding_export.
FLATBUFFER = Path(__file__).parent / "models" / "face_embedding.int8.tflite"

#: The side of the aligned chip the network reads, pixels (dlib's ``get_face_chip(img, shape, 150, 0.25)``).
CHIP = 150
PADDING = 0.25
DIM = 128


@functools.lru_cache(maxsize=None)
def _litert():
    """The shipped flatbuffer on LiteRT, or None where either is missing (dlib then computes)."""
    from .runtime import TFLiteForward, litert_available

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
