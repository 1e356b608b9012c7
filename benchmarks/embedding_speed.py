"""The identity embedding: dlib's own forward pass against the shipped LiteRT flatbuffer, side by side.

    python benchmarks/embedding_speed.py [--flatbuffer PATH]

Faces: every face dlib's HOG finds in ../shared/identities and ../shared/media/photos, aligned as
``people.embed`` aligns them (dlib's 150-px chip by the 5 landmarks). Prints ms per face for each (one
thread, one chip a pass and batches of 8), and how far the flatbuffer's embeddings and pairwise distances
are from dlib's: the largest difference, and how many pairs change side of ``people.TOLERANCE``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from _common import SHARED


def chips() -> np.ndarray:
    import dlib

    from batchemo.faces.detect import model_file
    from batchemo.faces.embed import CHIP, PADDING
    from batchemo.sources.images import read_image

    marks = dlib.shape_predictor(model_file("landmarks"))
    hog = dlib.get_frontal_face_detector()
    files = sorted((SHARED / "identities").rglob("*.jp*g")) + sorted((SHARED / "media" / "photos").iterdir())
    out = []
    for f in files:
        try:
            rgb = read_image(f)[0]
        except Exception:  # noqa: BLE001 - a file the decoder refuses is not a face to compare
            continue
        out += [np.asarray(dlib.get_face_chip(rgb, marks(rgb, r), CHIP, PADDING)) for r in hog(rgb, 1)]
    return np.stack(out)


def per_face_ms(fn, x) -> tuple[np.ndarray, float]:
    fn(x[:2])  # warm
    t = time.perf_counter()
    y = fn(x)
    return y, (time.perf_counter() - t) / len(x) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flatbuffer", help="default: the shipped one (face_embedding.FLATBUFFER)")
    a = ap.parse_args()
    import dlib

    from batchemo.core.runtime import TFLiteForward
    from batchemo.faces.detect import model_file
    from batchemo.faces.embed import FLATBUFFER
    from batchemo.people.cluster import TOLERANCE

    x = chips()
    rec = dlib.face_recognition_model_v1(model_file("embedding"))
    ref, ms = per_face_ms(lambda c: np.array([np.asarray(v) for v in rec.compute_face_descriptor(list(c))]), x)
    print(f"{len(x)} faces; dlib's own pass: {ms:.1f} ms a face (batch of all, its own threads)")
    net = TFLiteForward(open(a.flatbuffer or FLATBUFFER, "rb").read(), threads=1)
    for batch in (1, 8):
        ours, ms_b = per_face_ms(lambda c: net(c.astype(np.float32), batch_size=batch), x)
        print(f"flatbuffer, 1 thread, {batch} a pass: {ms_b:.1f} ms a face ({ms / ms_b:.1f}x faster)")
    dist = lambda e: np.linalg.norm(e[:, None] - e[None], axis=2)  # noqa: E731
    d_ref, d_ours = dist(ref), dist(ours)
    flips = int(((d_ref < TOLERANCE) != (d_ours < TOLERANCE)).sum() // 2)
    near = int((np.abs(d_ref - TOLERANCE) < 0.05).sum() // 2)
    print(f"largest difference from dlib: embedding {np.abs(ours - ref).max():.4f}, distance "
          f"{np.abs(d_ours - d_ref).max():.4f}; pairs on the other side of {TOLERANCE}: {flips} "
          f"of {len(x) * (len(x) - 1) // 2} ({near} within 0.05 of it)")


if __name__ == "__main__":
    main()
