"""Helpers shared by the benchmark scripts: locating ../shared, unpacking FER2013's validation split, timing."""
from __future__ import annotations

import os
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BATCHEMO_SHARED", ROOT.parent / "shared"))


def fer_split(split: str = "validation") -> Path:
    """FER2013's split as class folders, unpacked once into the temp dir (reused by later runs)."""
    out = Path(tempfile.gettempdir()) / "batchemo-bench-fer"
    folder = out / "fer2013" / split
    if not folder.exists():
        archive = SHARED / "datasets" / "fer2013.tar.gz"
        if not archive.exists():
            raise SystemExit(f"needs {archive}")
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if f"/{split}/" in m.name]
            tar.extractall(out, members=members, filter="data")
    return folder


def timed(fn, *args, repeat: int = 1, **kwargs):
    """(best wall seconds over ``repeat`` runs, last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t)
    return best, result
