"""The old and the new default model side by side, in one run: accuracy, faces/s and seconds per explanation.

    python benchmarks/model_speed.py --old OLD.keras [--new NEW.keras] [--faces 12] [--seed-model PATH]

``--new`` defaults to the shipped model. The previous shipped model comes out of git, e.g.
``git show fd0c08b:batchemo/models/default.keras > /tmp/old.keras`` (and ``default.card.json`` beside it
as ``/tmp/old.card.json``). For each model, on FER2013's validation split (3,589 faces):

* validation accuracy as the model card reads a face (``tta``, ``batchemo.tta``: one pass, the mean with
  the mirror image, or the mean of two 5-degree turns), and each of the other ways too;
* multiply-adds per face as read (one pass, or two for a two-view read);
* faces/s of ``evaluate`` (the road every command takes, batches of 512; best of 3);
* seconds per explanation: ``explain_face`` with the default ``LimeSettings`` on the same ``--faces`` faces.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from _common import fer_split, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", help="the previous default model (.keras with its card)")
    ap.add_argument("--new", help="the new default model (default: the shipped one)")
    ap.add_argument("--seed-model", help="also a model trained with the seed's architecture and recipe")
    ap.add_argument("--faces", type=int, default=12, help="faces explained per model")
    a = ap.parse_args()

    from batchemo.emotions.evaluate import evaluate
    from batchemo.emotions.model import load_keras, load_model
    from batchemo.emotions.tta import WAYS, passes
    from batchemo.explain.lime import LimeSettings, explain_face
    from batchemo.sources.labelled import load_folder
    from batchemo.training import count_macs

    data = load_folder(fer_split("validation"))
    faces = data.images[np.random.default_rng(0).choice(len(data), a.faces, replace=False)]
    models = [("new default", load_model(a.new))]
    if a.old:
        models.insert(0, ("old default", load_model(a.old)))
    if a.seed_model:
        models.append(("seed", load_model(a.seed_model)))

    rows = []
    for name, model in models:
        card_tta = model.tta
        acc = {}
        for tta in WAYS:
            model.tta = tta
            model.predict(data.images[:512])  # warm-up: trace the graph
            secs, ev = timed(evaluate, model, data, repeat=3 if tta == card_tta else 1)
            acc[tta] = ev.accuracy
            if tta == card_tta:
                fps, macro_f1 = len(data) / secs, ev.macro_f1
        model.tta = card_tta
        explain_face(model, faces[0], None, LimeSettings(num_samples=50))  # warm-up: the int8 copy
        t = time.perf_counter()
        for f in faces:
            explain_face(model, f, None, LimeSettings())
        s_expl = (time.perf_counter() - t) / len(faces)
        macs = (model.card.macs or count_macs(load_keras(model.path).keras_model)) * passes(card_tta)
        rows.append((name, model.name, card_tta, acc[card_tta], [acc[w] for w in WAYS], macro_f1, macs, fps, s_expl))

    print(f"FER2013 validation split: {len(data)} faces; CPU, best of 3; "
          f"explanations: {a.faces} faces, LimeSettings() defaults")
    print(f"{'model':12s} {'file':24s} {'tta':>5s} {'val acc':>8s} " + " ".join(f"{w:>6s}" for w in WAYS) +
          f" {'macro F1':>8s} {'M MACs':>7s} {'faces/s':>8s} {'s/expl':>7s}")
    for name, file, tta, acc, each, f1, macs, fps, se in rows:
        print(f"{name:12s} {file[:24]:24s} {tta:>5s} {acc:8.4f} " + " ".join(f"{v:6.4f}" for v in each) +
              f" {f1:8.4f} {macs / 1e6:7.1f} {fps:8.0f} {se:7.3f}")
    print(f"'val acc' reads faces as the card says ('tta'); {', '.join(WAYS)}: each way; M MACs per face as read")
    if len(rows) >= 2 and a.old:
        old, new = rows[0], rows[1]
        print(f"new vs old: {100 * (new[3] - old[3]):+.1f} points of accuracy, {new[6] / old[6]:.2f}x the "
              f"multiply-adds per face, {new[7] / old[7]:.2f}x the faces/s, {old[8] / new[8]:.2f}x faster explanations")


if __name__ == "__main__":
    main()
