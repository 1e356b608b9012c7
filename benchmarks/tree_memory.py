"""Wall time and memory of one `batchemo run` over its whole process tree (the run, its --jobs workers and
its child processes), sampled every 50 ms from /proc (Linux).

    python benchmarks/tree_memory.py [--copies 11] [-- extra run flags, e.g. --jobs 1 --no-explain]

Input: the real photos of ../shared/media/photos, copied ``--copies`` times (11: 99 photos). Prints photos/s,
the peak RSS of the run's own process, of the largest one process, and of all processes together (the sum
at its highest sample, which counts every library once per process), and the peak sum of PSS (shared pages
split between the processes that map them): what a laptop must hold.
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

from _common import SHARED


def _tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc/<pid>/task/*/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _pss_mb(pid: int) -> float:
    """Proportional set size: shared pages (libraries every process maps) split between their sharers."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Pss:")) / 1024
    except (OSError, StopIteration):
        return 0.0


def measure(cmd: list[str]) -> dict:
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    own = largest = total = pss = 0.0
    while proc.poll() is None:
        tree = _tree(proc.pid)
        sizes = {p: _rss_mb(p) for p in tree}
        own, largest = max(own, sizes.get(proc.pid, 0.0)), max([largest, *sizes.values()])
        total = max(total, sum(sizes.values()))
        pss = max(pss, sum(_pss_mb(p) for p in tree))
        time.sleep(0.05)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    return dict(wall=time.perf_counter() - t, own=own, largest=largest, total=total, pss=pss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=11)
    ap.add_argument("flags", nargs=argparse.REMAINDER, help="after --: flags for batchemo run")
    a = ap.parse_args()
    flags = [f for f in a.flags if f != "--"]
    photos = SHARED / "media" / "photos"
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.copies):
            shutil.copytree(photos, Path(tmp) / "in" / f"copy{k}")
        n = sum(1 for _ in (Path(tmp) / "in").rglob("*.*"))
        cmd = [sys.executable, "-m", "batchemo.cli", "run", f"{tmp}/in", "--csv", f"{tmp}/f.csv",
               "--report", f"{tmp}/r.html", "--no-resume", "-q", *flags]
        m = measure(cmd)
    print(f"batchemo run {' '.join(flags) or '(defaults)'}: {n} photos in {m['wall']:.1f} s, "
          f"{n / m['wall']:.2f} photos/s; peak RSS: run's process {m['own']:.0f} MB, largest process "
          f"{m['largest']:.0f} MB, all processes {m['total']:.0f} MB (PSS, shared pages counted once: "
          f"{m['pss']:.0f} MB)")


if __name__ == "__main__":
    main()
