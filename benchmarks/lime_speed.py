"""LIME seconds per face: as the seed calls it vs as batchemo computes it, same model, same faces, one run.

    python benchmarks/lime_speed.py [--faces 5] [--samples 1000] [--model PATH]

The seed: ``LimeImageExplainer().explain_instance(face, keras_model.predict-based fn, top_labels=6)``
with lime's defaults (quickshift superpixels, perturbations sent 10 at a time through ``model.predict``).
batchemo: ``explain_face`` (SLIC superpixels, all perturbations in one batch through a compiled forward
pass).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from _common import fer_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=5)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--model")
    a = ap.parse_args()

    from lime import lime_image
    from skimage.color import gray2rgb

    from batchemo.datasets import load_folder
    from batchemo.explain import LimeSettings, explain_face
    from batchemo.model import load_model

    model = load_model(a.model)
    data = load_folder(fer_split("validation"))
    rng = np.random.default_rng(0)
    faces = data.images[rng.choice(len(data), a.faces, replace=False)]
    keras_model = model.keras_model
    lime_image.tqdm = lambda it, *args, **kw: it  # keep the output readable; costs nothing either way

    def seed_fn(images):
        return keras_model.predict(np.asarray(images)[..., :1].astype("float32") / 255.0, verbose=0)

    seed_fn(gray2rgb(faces[:1]))
    explain_face(model, faces[0], settings=LimeSettings(num_samples=50))  # warm-up both paths

    t = time.perf_counter()
    for f in faces:
        lime_image.LimeImageExplainer(random_state=0).explain_instance(
            gray2rgb(f), seed_fn, top_labels=6, num_samples=a.samples)
    seed_s = (time.perf_counter() - t) / len(faces)

    t = time.perf_counter()
    for f in faces:
        explain_face(model, f, settings=LimeSettings(num_samples=a.samples))
    ours_s = (time.perf_counter() - t) / len(faces)

    t = time.perf_counter()
    for f in faces:
        explain_face(model, f, settings=LimeSettings(num_samples=a.samples, tta=True))
    tta_s = (time.perf_counter() - t) / len(faces)

    print(f"LIME, {a.samples} samples per face, {len(faces)} FER2013 validation faces, model {model.name}")
    print(f"  seed's call (lime defaults, batches of 10, model.predict): {seed_s:6.2f} s/face")
    print(f"  batchemo (one batch, compiled forward)                    : {ours_s:6.2f} s/face")
    print(f"  batchemo, explaining the flip-averaged classifier (tta)   : {tta_s:6.2f} s/face")
    print(f"  speed-up: {seed_s / ours_s:.1f}x (default), {seed_s / tta_s:.1f}x (tta)")


if __name__ == "__main__":
    main()
