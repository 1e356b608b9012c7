"""Faces that cannot be read: how often the model answers them with doubt, on FER2013 validation faces made
dark, blurred, tiny or masked.

    python benchmarks/unreadable_faces.py [--model M.keras ...]

Each validation face with a clear FER+ majority is read as it is and in four harder versions, drawn unlike
the training's own (``--unreadable``): at a tenth of its light; blurred by a Gaussian of 2.5 px; reduced to
12x12 pixels and enlarged; and with a mask, an ellipse of light grey from just below the eyes over the nose
and mouth. For each, the mean confidence, FER+ majority accuracy and the share of faces marked uncertain
(by confidence alone, by ``readability`` alone, and either: what a table's ``uncertain`` says).
"""
from __future__ import annotations

import argparse

import numpy as np
from _common import SHARED, fer_split


def dark(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) * 0.1).astype(np.uint8)


def blurred(x: np.ndarray) -> np.ndarray:
    import cv2

    return np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in x])


def tiny(x: np.ndarray) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(cv2.resize(f, (12, 12), interpolation=cv2.INTER_AREA), (48, 48)) for f in x])


def masked(x: np.ndarray) -> np.ndarray:
    """A surgical-mask-like ellipse of light grey over nose, mouth and chin, with a little cloth texture."""
    import cv2

    rng = np.random.default_rng(0)
    out = []
    for f in x:
        m = np.zeros((48, 48), np.uint8)
        cv2.ellipse(m, (24, 40), (21, 17), 0, 0, 360, 255, -1)
        m[:25] = 0  # the top edge, just below the eyes
        shade = rng.integers(150, 230)
        cloth = np.clip(shade + rng.normal(0, 6, (48, 48)), 0, 255).astype(np.uint8)
        out.append(np.where(m > 0, cloth, f))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="*", default=[None], help=".keras models (default: the shipped one)")
    a = ap.parse_args()
    votes = SHARED / "datasets" / "ferplus-votes.csv"
    if not votes.exists():
        raise SystemExit(f"needs {votes}")

    from batchemo.emotions.doubt import is_uncertain
    from batchemo.emotions.model import load_model
    from batchemo.emotions.readability import reasons
    from batchemo.explain.classify import classify
    from batchemo.sources.labelled import load_folder, with_votes

    data = with_votes(load_folder(fer_split("validation")), votes, "validation")  # labels: the FER+ majority
    print(f"{len(data)} validation faces with a clear FER+ majority")
    for path in a.model:
        model = load_model(path)
        print(f"\n## {model.name} (tta {model.tta}, temperature {model.temperature:g})")
        print(f"{'faces':>10s} {'confidence':>10s} {'majority acc':>12s} {'uncertain':>9s} {'unreadable':>10s} "
              f"{'either':>7s}")
        for name, fn in (("as they are", None), ("dark", dark), ("blurred", blurred), ("12 px", tiny),
                         ("masked", masked)):
            x = data.images if fn is None else fn(data.images)
            p, _ = classify(model, x)
            doubt = is_uncertain(p)
            why = np.array([bool(r) for r in reasons(x)])
            acc = float((p.argmax(1) == data.labels).mean())
            print(f"{name:>11s} {p.max(1).mean():10.3f} {acc:12.1%} {doubt.mean():9.1%} {why.mean():10.1%} "
                  f"{(doubt | why).mean():7.1%}")


if __name__ == "__main__":
    main()
