"""Photos per second of ``batchemo run`` with explanations on: locally, and on a Dask scheduler with 1 and
2 workers on this machine, side by side.

    python benchmarks/dask_scale.py [--copies 6] [--workers 1 2]

Input: the shared photos copied ``--copies`` times. Each cluster is a real ``dask scheduler`` and ``dask
worker`` processes (one thread each) started here, before the clock; the run is the CLI
(``batchemo run PHOTOS --csv ... --backend dask --scheduler ADDR``) in a fresh process, so a worker's first
photo pays for loading its model, as a local run's worker does.
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SHARED


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(folder: str, out: str, extra: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "batchemo.cli", "run", folder, "--csv", out, "--no-resume", "-q",
                        *extra], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    return time.perf_counter() - t


def _cluster(workers: int):
    from dask.distributed import Client

    address = f"tcp://127.0.0.1:{_port()}"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for _ in range(workers)]
    with Client(address, timeout=60) as c:
        c.wait_for_workers(workers, timeout=120)
    return address, procs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=6)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.copies):
            shutil.copytree(SHARED / "media" / "photos", Path(tmp) / "in" / f"copy{k}")
        n = sum(1 for _ in (Path(tmp) / "in").rglob("*.*"))
        rows = [("local (default --jobs)", _run(f"{tmp}/in", f"{tmp}/l.csv", []))]
        for w in a.workers:
            address, procs = _cluster(w)
            try:
                rows.append((f"dask, {w} worker{'s' if w != 1 else ''}",
                             _run(f"{tmp}/in", f"{tmp}/d{w}.csv", ["--backend", "dask", "--scheduler", address])))
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(timeout=30)
    local = n / rows[0][1]
    print(f"{n} photos, explanations on\n{'run':24s} {'seconds':>8s} {'photos/s':>9s} {'vs local':>9s}")
    for name, secs in rows:
        print(f"{name:24s} {secs:8.1f} {n / secs:9.2f} {n / secs / local:8.2f}x")


if __name__ == "__main__":
    main()
