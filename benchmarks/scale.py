"""How `batchemo run` scales with the collection: photos/s, peak memory, report size and render time.

    python benchmarks/scale.py 100 1000 10000 [--explain] [--dask]

For each N it generates a collection of N photos (into the temp folder, reused by later runs; nothing
from ../shared): scikit-image's astronaut and camera-man faces pasted at 0.4-1.6x their size, at random
places and brightness, onto scikit-image backgrounds, in 20 folders, with a no-face photo in ten. Each N
runs in a fresh process (peak RSS: the largest one process of that run, its workers included), streaming
its CSV and writing the report as the CLI does. --dask also runs each N on a local Dask cluster of 2 worker
processes and checks the rows match.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT  # noqa: F401  (sets TF's log level)


def make_collection(n: int) -> Path:
    """N generated photos under the temp folder (made once per N)."""
    import cv2
    from skimage import data

    out = Path(tempfile.gettempdir()) / f"batchemo-bench-scale-{n}"
    done = out / ".complete"
    if done.exists():
        return out
    rng = np.random.default_rng(n)
    astro = data.astronaut()[30:230, 140:320]  # her face and shoulders
    backgrounds = [data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    backgrounds = [cv2.resize(b, (640, 480)) for b in backgrounds]
    for i in range(n):
        bg = backgrounds[i % len(backgrounds)].copy()
        if i % 10:
            s = rng.uniform(0.4, 1.6)
            face = cv2.resize(astro, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            fh, fw = face.shape[:2]
            fh, fw = min(fh, 480), min(fw, 640)
            y, x = rng.integers(0, 480 - fh + 1), rng.integers(0, 640 - fw + 1)
            bg[y: y + fh, x: x + fw] = np.clip(face[:fh, :fw] * rng.uniform(0.7, 1.2), 0, 255).astype(np.uint8)
        path = out / f"folder{i % 20:02d}" / f"photo{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), bg[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    done.touch()
    return out


def child(n: int, explain: bool, backend: str, out: Path, detector: str = "auto", people: bool = True,
          jobs: int | None = None) -> dict:
    """One run, in this process: the CLI's own path (streamed CSV, bounded gallery, report)."""
    from batchemo import run
    from batchemo.outputs.rows import TABLE_COLUMNS
    from batchemo.outputs.tables import TableWriter
    from batchemo.report.run import write_run_report

    folder = make_collection(n)
    t0 = time.perf_counter()
    with TableWriter(out / f"scale{n}-{backend}.csv", TABLE_COLUMNS) as sink:
        result = run(folder, explain=explain, lime_samples=300, progress=False, sinks=[sink], keep_table=False,
                     backend=backend, jobs=jobs, detector=detector, people=people)
    t1 = time.perf_counter()
    report = write_run_report(result, out / f"scale{n}-{backend}.html")
    t2 = time.perf_counter()
    return {"n": n, "backend": backend, "faces": result.stats.faces, "seconds": t1 - t0,
            "photos_per_s": n / (t1 - t0), "render_s": t2 - t1, "report_mb": report.stat().st_size / 2**20,
            "peak_rss_mb": max(resource.getrusage(who).ru_maxrss for who in  # the largest one process
                               (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024,
            "csv": str(out / f"scale{n}-{backend}.csv")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sizes", nargs="*", type=int, default=[100, 1000])
    ap.add_argument("--explain", action="store_true", help="LIME for every face (300 samples)")
    ap.add_argument("--dask", action="store_true", help="also run on a local Dask cluster of 2 workers")
    ap.add_argument("--detector", default="auto", help="face detector (default: auto, batchemo's default)")
    ap.add_argument("--jobs", type=int, help="worker processes (default: what pays, as batchemo run)")
    ap.add_argument("--no-people", action="store_true", help="without identity embeddings")
    ap.add_argument("--runtime", choices=["litert", "keras"], help="the model's runtime (BATCHEMO_RUNTIME; default: "
                    "batchemo's own choice, LiteRT where installed)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--backend", default="loky", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "batchemo-bench-scale-out"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.child:
        print(json.dumps(child(a.child, a.explain, a.backend, out, a.detector, not a.no_people, a.jobs)))
        return
    print(f"`batchemo run` on generated collections ({'with' if a.explain else 'no'} explanations, detector "
          f"{a.detector}, people {'off' if a.no_people else 'on'}, runtime {a.runtime or 'auto'}), "
          f"{os.cpu_count()} cores")
    print(f"{'N':>7s} {'backend':>7s} {'faces':>7s} {'seconds':>8s} {'photos/s':>9s} {'peak RSS MB':>12s} "
          f"{'report MB':>10s} {'render s':>9s}")
    for n in a.sizes:
        make_collection(n)
        for backend in ["loky"] + (["dask"] if a.dask else []):
            cmd = [sys.executable, __file__, "--child", str(n), "--backend", backend, "--out", str(out),
                   "--detector", a.detector] + (["--no-people"] if a.no_people else []) + \
                (["--jobs", str(a.jobs)] if a.jobs else [])
            if a.explain:
                cmd.append("--explain")
            env = dict(os.environ, **({"BATCHEMO_RUNTIME": a.runtime} if a.runtime else {}))
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if r.returncode != 0:
                raise SystemExit(r.stderr[-2000:])
            m = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"{n:7d} {backend:>7s} {m['faces']:7d} {m['seconds']:8.1f} {m['photos_per_s']:9.1f} "
                  f"{m['peak_rss_mb']:12.0f} {m['report_mb']:10.2f} {m['render_s']:9.2f}", flush=True)
        if a.dask:
            import pandas as pd

            rows = [pd.read_csv(out / f"scale{n}-{b}.csv") for b in ("loky", "dask")]
            same = rows[0].drop(columns=[]).equals(rows[1])
            print(f"{'':7s} dask rows identical to the local run's: {same}")


if __name__ == "__main__":
    main()
