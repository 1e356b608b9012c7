"""LIME: seconds per face and how good the explanations are, for the seed's call, today's setting and the
new default, on the same FER2013 validation faces, in one run.

    python benchmarks/lime_speed.py [--faces 12] [--seed-faces 3] [--model PATH] [--today-model OLD.keras]
    python benchmarks/lime_speed.py --curve [--faces 16] [--samples 200 300 400 500]
        [--sampling halves lime] [--no-today]

Rows (main table):
  seed's call   ``LimeImageExplainer().explain_instance(face, fn, top_labels=6)`` with lime's defaults
                (quickshift superpixels, batches of 10 through ``keras_model.predict``), 1000 samples;
  today         the previous default: SLIC, 1000 samples in one batch through the compiled float network,
                un-mirrored (no TTA), ``top_labels=6``;
  new default   ``explain_face`` with ``LimeSettings()``: the classifier whose label is shown (averaged over
                the views the model card's TTA names), int8 TensorFlow Lite passes, per-class fits, and
                the faithfulness curves it adds.

``--today-model``: the model today's setting and the seed's call explain, when the new default comes with a
new model (each row's AUCs are then measured on its own model's shown class); a last row then runs today's
setting on the new model, to tell what the setting changes from what the model changes.

Columns: s/face (mean over every call, three seeds each); deletion and insertion AUC (RISE) of the shown
class along each row's heatmap order, all measured with the *same* evaluator, the float network as
``model.predict`` uses it (with the card's TTA), ``--steps`` points per curve,
hidden superpixels at their mean grey as LIME hides them (the ``random`` columns: two random orders of
the same face's superpixels); seed stability, the mean Jaccard overlap of the 5 top superpixels between
seeds 0, 1 and 2.

``--curve`` prints the fidelity curve the default ``num_samples`` was chosen from: the new default at each
sample count, and today's setting as the reference.
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from _common import fer_split

SEEDS = (0, 1, 2)


def top5(weights: dict[int, float]) -> set[int]:
    return {s for s, _ in sorted(weights.items(), key=lambda kv: -kv[1])[:5]}


def jaccard_stability(runs: list[dict[int, float]]) -> float:
    return float(np.mean([len(top5(a) & top5(b)) / len(top5(a) | top5(b)) for a, b in itertools.combinations(runs, 2)]))


class Row:
    def __init__(self, name: str):
        self.name, self.times, self.dels, self.inss, self.rdels, self.rinss, self.stab = name, [], [], [], [], [], []

    def line(self, width: int) -> str:
        m = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
        return (f"  {self.name:<{width}} {m(self.times):7.3f} {m(self.dels):8.3f} {m(self.rdels):8.3f} "
                f"{m(self.inss):8.3f} {m(self.rinss):8.3f} {m(self.stab):9.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=12)
    ap.add_argument("--seed-faces", type=int, default=3, help="faces for the (slow) seed's call")
    ap.add_argument("--curve", action="store_true", help="the fidelity curve instead of the main table")
    ap.add_argument("--samples", type=int, nargs="+", default=[100, 200, 300, 500, 1000])
    ap.add_argument("--steps", type=int, default=16, help="points per deletion/insertion curve")
    ap.add_argument("--sampling", nargs="+", default=["halves"], help="--curve: sampling designs to compare")
    ap.add_argument("--no-today", action="store_true", help="--curve: leave out today's (slow) reference row")
    ap.add_argument("--model")
    ap.add_argument("--today-model", help="the model of the seed's call and today's setting (default: --model)")
    a = ap.parse_args()

    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm
    from skimage.color import gray2rgb

    from batchemo.emotions.model import load_keras, load_model
    from batchemo.emotions.tta import SHORT as SHORT_TTA
    from batchemo.emotions.tta import describe as describe_tta
    from batchemo.explain.lime import (
        LimeSettings,
        auc,
        classifier_fn,
        curves,
        explain_face,
        float_classifier,
        hidden_face,
        lime_order,
        random_orders,
        segment,
    )
    from batchemo.sources.labelled import load_folder

    model = load_model(a.model)
    old = load_keras(a.today_model or a.model)  # the seed's way: Keras predict in batches of 10
    data = load_folder(fer_split("validation"))
    rng = np.random.default_rng(0)
    faces = data.images[rng.choice(len(data), a.faces, replace=False)]
    # each model is judged as model.predict computes it (the evaluator), on the class it shows
    readers = {id(m): (float_classifier(m), m.predict(faces).argmax(1)) for m in (model, old)}
    shown = readers[id(model)][1]
    lime_image.tqdm = lambda it, *args, **kw: it  # keep the output readable; costs nothing either way
    keras_model = old.keras_model

    def seed_fn(images):
        return keras_model.predict(np.asarray(images)[..., :1].astype("float32") / 255.0, verbose=0)

    def today(face, seed, m=old):
        exp = lime_image.LimeImageExplainer(random_state=seed).explain_instance(
            gray2rgb(face), classifier_fn(m, tta=False), top_labels=6, hide_color=None, num_samples=1000,
            batch_size=1000, random_seed=seed,
            segmentation_fn=SegmentationAlgorithm("slic", n_segments=50, compactness=20.0, start_label=0))
        for idx in exp.top_labels:  # what today's explain_face did with every label: one outline image each
            exp.get_image_and_mask(idx, positive_only=False, num_features=10, hide_rest=False)
        return exp

    def seed_call(face, seed):
        return lime_image.LimeImageExplainer(random_state=seed).explain_instance(
            gray2rgb(face), seed_fn, top_labels=6, num_samples=1000)

    def from_lime(exp, k, m=old):  # (weights of the shown class, segments); a class outside top 6 has none
        return dict(exp.local_exp.get(int(readers[id(m)][1][k]), [])), exp.segments

    def new(settings):
        def run(face, seed, k):
            s = LimeSettings(**{**settings.__dict__, "seed": seed})
            # the shown class comes from the batch predict, as classify passes it in a run
            e = explain_face(model, face, [model.classes[shown[k]]], s, shown=int(shown[k]))[model.classes[shown[k]]]
            return dict(e.weights), e.segments
        return run

    def measure(row: Row, fn, idx, takes_k=True, m=model):
        shown_clf, shown = readers[id(m)]
        for k in idx:
            runs = []
            for seed in SEEDS:
                t = time.perf_counter()
                out = fn(faces[k], seed, k) if takes_k else fn(faces[k], seed)
                row.times.append(time.perf_counter() - t)
                runs.append(out if takes_k else from_lime(out, k, m))
            weights, segments = runs[0]
            n = int(segments.max()) + 1
            hidden = hidden_face(faces[k], segments)
            c = curves(shown_clf, faces[k], segments, hidden, [lime_order(weights, n)] + random_orders(n, 2, 0),
                       steps=a.steps)[..., shown[k]]
            row.dels.append(auc(c[0, 0]))
            row.inss.append(auc(c[0, 1]))
            row.rdels.append(np.mean([auc(x) for x in c[1:, 0]]))
            row.rinss.append(np.mean([auc(x) for x in c[1:, 1]]))
            row.stab.append(jaccard_stability([w for w, _ in runs]))
        return row

    # warm up every path (graph tracing, TFLite conversion) outside the clocks
    seed_fn(gray2rgb(faces[:1]))
    today(faces[0], 0)
    explain_face(model, faces[0], None, LimeSettings(num_samples=50))
    explain_face(model, faces[0], None, LimeSettings(num_samples=50, quantized=False))

    every = range(len(faces))
    # how the model card reads a face: what the label comes from
    reads = SHORT_TTA[model.tta]
    evaluator = f"float network ({describe_tta(model.tta, model.card.architecture)}, as its card says)"
    if old is not model:
        evaluator = f"each row's own model as its card reads it (new: {evaluator})"
    n_seg = np.mean([int(segment(f).max()) + 1 for f in faces])
    head = "  {:<{w}} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9}"
    if a.curve:
        rows = [] if a.no_today else [
            measure(Row("today: 1000, float, no TTA"), lambda f, s, k: from_lime(today(f, s), k), every, m=old)]
        for design, n in itertools.product(a.sampling, a.samples):
            rows.append(measure(Row(f"{reads}, int8, {design} sampling, {n} samples"),
                                new(LimeSettings(num_samples=n, sampling=design)), every))
        print(f"Fidelity curve: {len(faces)} FER2013 validation faces, ~{n_seg:.0f} SLIC superpixels, model "
              f"{model.name}; AUCs of the shown class on the {evaluator}, {a.steps} steps")
    else:
        sub = range(min(a.seed_faces, len(faces)))
        d = LimeSettings()
        rows = [
            measure(Row("seed's call (quickshift, batches of 10)"), seed_call, sub, takes_k=False, m=old),
            measure(Row("today (1000, SLIC, float, no TTA)"), today, every, takes_k=False, m=old),
            measure(Row(f"new default ({d.num_samples}, {reads}, int8)"), new(d), every),
            measure(Row("new default, float passes"), new(LimeSettings(quantized=False)), every),
        ]
        if old is not model:  # the same setting on the new model: what the setting changes, model aside
            rows.append(measure(Row("today's setting on the new model"), lambda f, s: today(f, s, model), every,
                                takes_k=False))
        newsub = rows[2].times[: len(sub) * len(SEEDS)]
        todaysub = rows[1].times[: len(sub) * len(SEEDS)]
        models = model.name if old is model else f"today's rows: {old.name}, new rows: {model.name}"
        print(f"LIME on FER2013 validation faces ({len(faces)}; the seed's call on the first {len(sub)}), "
              f"model {models}; AUCs of the shown class on the {evaluator}, {a.steps} steps")
    w = max(len(r.name) for r in rows)
    print(head.format("", "s/face", "del AUC", "random", "ins AUC", "random", "stability", w=w))
    for r in rows:
        print(r.line(w))
    if not a.curve:
        print(f"  new default vs today: {np.mean(rows[1].times) / np.mean(rows[2].times):.1f}x faster "
              f"(same {len(faces)} faces); vs the seed's call: "
              f"{np.mean(rows[0].times) / np.mean(newsub):.1f}x (same {len(sub)} faces; today "
              f"{np.mean(rows[0].times) / np.mean(todaysub):.1f}x)")


if __name__ == "__main__":
    main()
