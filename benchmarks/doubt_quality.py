"""Doubt: which labels to mark uncertain, and what a faithfulness score means, measured on FER2013 validation.

    python benchmarks/doubt_quality.py [--lime-faces 120]

Reads the validation split as the shipped model's card says (its test-time augmentation, ``classify``), and
prints, for confidence and margin (top-1 minus top-2 probability) thresholds, the share of faces marked
uncertain and the accuracy of the labels above and below. Then LIME's faithfulness (median, quartiles,
and accuracy by verdict) on ``--lime-faces`` validation faces and on the faces of ../shared/media/photos.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import SHARED, fer_split


def _validation() -> Path:
    local = Path("/tmp/fer2013/validation")
    return local if local.exists() else fer_split("validation")


def _rows(name: str, score: np.ndarray, correct: np.ndarray, thresholds) -> None:
    print(f"\n{name:>10s} {'marked':>7s} {'acc above':>9s} {'acc below':>9s}")
    for t in thresholds:
        low = score < t
        above = correct[~low].mean() if (~low).any() else float("nan")
        below = correct[low].mean() if low.any() else float("nan")
        print(f"{t:10.2f} {low.mean():7.1%} {above:9.1%} {below:9.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lime-faces", type=int, default=120)
    a = ap.parse_args()

    from batchemo import run
    from batchemo.emotions.doubt import is_uncertain, margin
    from batchemo.emotions.evaluate import evaluate
    from batchemo.emotions.model import load_model
    from batchemo.explain.classify import classify
    from batchemo.explain.faithfulness import faithfulness_verdict
    from batchemo.explain.lime import LimeSettings
    from batchemo.sources.labelled import load_folder

    model = load_model()
    data = load_folder(_validation())
    ev = evaluate(model, data)
    p = ev.probabilities
    correct = ev.predictions == ev.labels
    print(f"{len(correct)} validation faces, accuracy {correct.mean():.2%} (tta {model.card.preprocessing.get('tta')})")
    _rows("confidence", p.max(1), correct, (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7))
    _rows("margin", margin(p), correct, (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4))
    flag = is_uncertain(p)
    print(f"\nshipped rule: {flag.mean():.1%} marked uncertain; accuracy {correct[~flag].mean():.1%} of the others, "
          f"{correct[flag].mean():.1%} of the uncertain")

    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(correct), min(a.lime_faces, len(correct)), replace=False))
    _, exps = classify(model, data.images[pick], LimeSettings())
    shown = p[pick].argmax(1)
    from batchemo.core.records import CLASSES

    f = np.array([e[CLASSES[k]].faithfulness for e, k in zip(exps, shown)])
    _faith("validation", f, correct[pick])
    photos = SHARED / "media" / "photos"
    if photos.exists():
        res = run(photos, progress=False, people=False)
        t = res.table[res.table.status == "ok"]
        _faith("photos", t.lime_faithfulness.to_numpy(float), None)
    print("verdicts:", {v: faithfulness_verdict(x) for v, x in (("0.05", 0.05), ("0.2", 0.2), ("0.4", 0.4))})


def _faith(name: str, f: np.ndarray, correct) -> None:
    from batchemo.explain.faithfulness import faithfulness_verdict

    q1, med, q3 = np.quantile(f, [0.25, 0.5, 0.75])
    print(f"\nfaithfulness on {len(f)} {name} faces: median {med:.2f} (quartiles {q1:.2f}-{q3:.2f}), "
          f"deciles " + " ".join(f"{x:.2f}" for x in np.quantile(f, np.linspace(0.1, 0.9, 9))))
    for v in ("weak", "fair", "strong"):
        m = np.array([faithfulness_verdict(x) == v for x in f])
        acc = f", label accuracy {correct[m].mean():.1%}" if correct is not None and m.any() else ""
        print(f"  {v:6s} {m.mean():6.1%}{acc}")


if __name__ == "__main__":
    main()
