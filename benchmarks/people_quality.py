"""People: how well faces group into people, and what embedding and clustering cost, side by side.

    python benchmarks/people_quality.py [--copies 3]

Grouping: the 9 faces of ../shared/media/photos (Obama in five photos, Biden in two, two other people once),
pairwise precision and recall at several clustering tolerances. Cost: `batchemo run` without explanations
on ``--copies`` copies of those photos, with people on and off, in one process, alternating.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import SHARED

TRUTH = {("32bit.png", 0): "obama", ("obama.jpg", 0): "obama", ("obama-240p.jpg", 0): "obama",
         ("obama_partial_face.jpg", 0): "obama", ("two_people.jpg", 0): "obama", ("two_people.jpg", 1): "biden",
         ("biden.jpg", 0): "biden", ("justin.jpg", 0): "justin", ("lin-manuel-miranda.png", 0): "lin"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=3)
    a = ap.parse_args()

    from batchemo import run
    from batchemo.people import TOLERANCE, name_people, pairwise_scores

    photos = SHARED / "media" / "photos"
    if not photos.exists():
        raise SystemExit(f"needs {photos}")
    result = run(photos, explain=False, progress=False)
    refs = [r for r in result.faces if (Path(r.source).name, r.face_index) in TRUTH]
    keys = [(Path(r.source).name, r.face_index) for r in refs]
    emb = np.stack([r.embedding for r in refs])
    d = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    same = np.array([[TRUTH[i] == TRUTH[j] for j in keys] for i in keys])
    off = ~np.eye(len(keys), dtype=bool)
    print(f"{len(refs)} faces of {len(set(TRUTH.values()))} people in {photos}")
    print(f"embedding distance, same person: max {d[same & off].max():.2f}; different people: min {d[~same].min():.2f}")
    print(f"{'tolerance':>9s} {'precision':>9s} {'recall':>7s} {'people':>6s}")
    for tol in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        names = name_people(emb, tolerance=tol)
        p, r = pairwise_scores([TRUTH[k] for k in keys], names)
        print(f"{tol:9.2f} {p:9.2f} {r:7.2f} {len(set(names)):6d}" + ("  <- shipped" if tol == TOLERANCE else ""))

    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.copies):
            shutil.copytree(photos, Path(tmp) / f"copy{k}")
        run(tmp, explain=False, progress=False, people=False)  # warm up
        times = {True: [], False: []}
        for _ in range(3):
            for people in (False, True):
                t = time.perf_counter()
                res = run(tmp, explain=False, progress=False, people=people, keep_table=False)  # names people too
                times[people].append(time.perf_counter() - t)
        faces = res.stats.faces
        off_s, on_s = min(times[False]), min(times[True])
        print(f"\n`run` without explanations on {a.copies} copies ({faces} faces), best of 3 each, alternating:")
        print(f"people off {off_s:.2f} s ({off_s / faces * 1000:.0f} ms/face), people on {on_s:.2f} s "
              f"({on_s / faces * 1000:.0f} ms/face): {on_s / off_s:.2f}x the time, "
              f"+{(on_s - off_s) / faces * 1000:.0f} ms per face")


if __name__ == "__main__":
    main()
