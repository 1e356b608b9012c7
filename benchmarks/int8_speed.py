"""What LIME's forward passes cost through each TensorFlow Lite form of the model, and how often each gives
the float network's top class: why ``batchemo.fastpath`` converts with dynamic-range int8.

    python benchmarks/int8_speed.py [--model PATH] [--passes 800] [--faces 1500]

Forms: float32 TFLite, float16 weights, dynamic-range int8 (int8 weights, activations quantised per batch:
what batchemo uses), and full-integer int8 (activations calibrated on 400 FER2013 training faces). Each is
timed on ``--passes`` validation faces in batches of 64 (as ``fastpath`` sends them) with 2 threads, best of
5, beside the float Keras network; agreement is the share of ``--faces`` validation faces whose top class
equals the float network's (one pass each, no flip), and max |dp| the largest probability difference; for a
model whose card reads a face in two views, a last row gives the same for int8 and float both read that way.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from _common import fer_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--passes", type=int, default=800)
    ap.add_argument("--faces", type=int, default=1500)
    a = ap.parse_args()

    import tensorflow as tf

    from batchemo.emotions.fastpath import _convert, _Int8Forward
    from batchemo.emotions.model import load_keras as load_model  # converts from the Keras model
    from batchemo.emotions.tta import read as read_views
    from batchemo.sources.labelled import load_folder

    model = load_model(a.model)
    km = model.keras_model
    val = load_folder(fer_split("validation"))
    x = val.images[: max(a.faces, a.passes)].astype(np.float32)[..., None] / 255.0
    cal = load_folder(fer_split("train")).images
    cal = cal[np.random.default_rng(0).choice(len(cal), 400, replace=False)].astype(np.float32)[..., None] / 255.0

    def configure(form: str):
        def set_options(c):
            if form != "float32":
                c.optimizations = [tf.lite.Optimize.DEFAULT]
            if form == "float16 weights":
                c.target_spec.supported_types = [tf.float16]
            if form == "full-integer int8":
                c.representative_dataset = lambda: ([cal[i: i + 1]] for i in range(len(cal)))
        return set_options

    def best_of(f, n=5):
        f()
        times = []
        for _ in range(n):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return min(times)

    ref = km.predict(x[: a.faces], batch_size=512, verbose=0)
    passes = x[: a.passes]
    keras_s = best_of(lambda: km.predict(passes, batch_size=len(passes), verbose=0))
    print(f"{a.passes} forward passes of {model.name}, 2 threads; agreement on {a.faces} FER2013 validation faces")
    print(f"  {'form':<22} {'MB':>5} {'ms':>7} {'vs Keras':>8} {'agree':>7} {'max |dp|':>8}")
    print(f"  {'Keras float32':<22} {'':>5} {keras_s * 1000:7.0f} {1.0:7.1f}x {1.0:7.4f} {0.0:8.3f}")
    for form in ("float32", "float16 weights", "dynamic-range int8", "full-integer int8"):
        fb = _convert(km, configure(form))
        run = _Int8Forward(fb, list(range(ref.shape[1])), threads=2)  # any float-in/float-out flatbuffer
        p = run(x[: a.faces])
        s = best_of(lambda: run(passes))
        print(f"  {form:<22} {len(fb) / 1e6:5.2f} {s * 1000:7.0f} {keras_s / s:7.1f}x "
              f"{(p.argmax(1) == ref.argmax(1)).mean():7.4f} {np.abs(p - ref).max():8.3f}")
        if form == "dynamic-range int8" and model.tta != "none":  # what explain uses: read as the card says
            q = read_views(run, x[: a.faces], model.tta)
            f = model.predict_scaled(x[: a.faces])
            print(f"  {'  the same, ' + model.tta:<22} {'':>5} {'':>7} {'':>8} "
                  f"{(q.argmax(1) == f.argmax(1)).mean():7.4f} {np.abs(q - f).max():8.3f}")


if __name__ == "__main__":
    main()
