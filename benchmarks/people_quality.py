"""People: how well faces group into people, by rule and tolerance, and what embedding and clustering cost.

    python benchmarks/people_quality.py [--copies 3] [--draws 200]

Grouping, pairwise precision and recall side by side on
- ids: ../shared/identities (8 people with 3-11 photos, 3 distractors each their own person; the largest
  face of each photo);
- photos: the 9 faces of ../shared/media/photos (Obama in five photos, Biden in two, two others once);
- draws: ``--draws`` random draws of only 2 or 3 photos per identity (and the distractors), the hard case for
  linking (fewer faces to bridge a person's far-apart photos): mean and worst precision and recall.
Rules: Chinese whispers alone ("cw") at several tolerances, with the second pass that merges clusters
whose mean embeddings are closer than the tolerance minus people.MEAN_MERGE_GAP ("cw+means"), and with the
cannot-link rule on top ("cw+means+apart", shipped: faces of one photo never one person), and average
linkage for comparison. Clip: the shared video's tracks, people and co-occurring tracks sharing one.
Cost: `batchemo run` without explanations on ``--copies`` copies of the photos, with people on and off,
in one process, alternating.
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
TOLERANCES = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def _photos(photos: Path) -> tuple[np.ndarray, list[str], list]:
    from batchemo import run

    result = run(photos, explain=False, progress=False)
    refs = [r for r in result.faces if (Path(r.source).name, r.face_index) in TRUTH]
    return (np.stack([r.embedding for r in refs]), [TRUTH[(Path(r.source).name, r.face_index)] for r in refs],
            [r.span() for r in refs])


def _identities(folder: Path) -> tuple[np.ndarray, list[str], list]:
    """The largest face of each photo with an embedding, and its person (a distractor: its own file)."""
    from batchemo import run

    result = run(folder, explain=False, progress=False)
    best: dict[str, object] = {}
    for r in result.faces:  # r.side: the face's box side, original pixels
        if np.isfinite(r.embedding).all() and (r.source not in best or r.side > best[r.source][0]):
            best[r.source] = (r.side, r)
    refs = [best[s][1] for s in sorted(best)]
    truth = [Path(r.source).parent.name + ("/" + Path(r.source).name if Path(r.source).parent.name == "_distractors"
                                           else "") for r in refs]
    return np.stack([r.embedding for r in refs]), truth, [r.span() for r in refs]


def _rules():
    from scipy.cluster.hierarchy import fcluster, linkage

    from batchemo.people.cluster import MEAN_MERGE_GAP, TOLERANCE, cluster

    def cw_only(t):
        return lambda e, apart: cluster(e, t, merge=False)

    def avg(t):
        return lambda e, apart: fcluster(linkage(e, "average"), t, "distance") if len(e) > 1 else np.zeros(len(e), int)

    rules = [(f"cw {t:.2f}", cw_only(t)) for t in TOLERANCES]
    rules += [(f"cw+means {t:.2f}", lambda e, apart, t=t: cluster(e, t)) for t in TOLERANCES]
    rules += [(f"cw+means+apart {t:.2f}" + (" <- shipped" if t == TOLERANCE else ""),
               lambda e, apart, t=t: cluster(e, t, apart=apart)) for t in (0.5, 0.55, 0.6)]
    rules += [(f"average {t:.2f}", avg(t)) for t in (0.5, 0.55, 0.6, 0.65)]
    return rules, MEAN_MERGE_GAP


def _draws(emb: np.ndarray, truth: list[str], apart: list, rule, n: int) -> tuple[float, float, float, float]:
    from batchemo.people.cluster import pairwise_scores

    rng = np.random.default_rng(0)
    t = np.array(truth)
    ps, rs = [], []
    for k in range(n):
        idx = []
        for who in sorted(set(truth)):
            rows = np.flatnonzero(t == who)
            idx += list(rows) if len(rows) == 1 else list(rng.choice(rows, min(len(rows), 2 + k % 2), replace=False))
        p, r = pairwise_scores(list(t[idx]), [str(x) for x in rule(emb[idx], [apart[i] for i in idx])])
        ps.append(p)
        rs.append(r)
    return float(np.mean(ps)), float(np.min(ps)), float(np.mean(rs)), float(np.min(rs))


def _distances(name: str, emb: np.ndarray, truth: list[str]) -> None:
    t = np.array(truth)
    d = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    iu = np.triu_indices(len(t), 1)
    same = (t[:, None] == t[None])[iu]
    print(f"{name}: {len(t)} faces of {len(set(truth))} people; embedding distance, same person: median "
          f"{np.median(d[iu][same]):.2f}, max {d[iu][same].max():.2f}; different people: min {d[iu][~same].min():.2f}")


def grouping(draws: int) -> None:
    from batchemo.people.cluster import pairwise_scores

    ids, photos = SHARED / "identities", SHARED / "media" / "photos"
    for p in (ids, photos):
        if not p.exists():
            raise SystemExit(f"needs {p}")
    sets = {"ids": _identities(ids), "photos": _photos(photos)}
    for name, (emb, truth, _) in sets.items():
        _distances(name, emb, truth)
    rules, gap = _rules()
    print(f"\npairwise precision P / recall R / people found n (cw+means: cluster means closer than tolerance - "
          f"{gap} merged)")
    print(f"{'rule':22s} {'ids':>17s} {'photos':>17s}   {'draws of 2-3 photos per id: P mean/min, R mean/min':s}")
    for name, rule in rules:
        cells = []
        for emb, truth, apart in sets.values():
            labels = rule(emb, apart)
            p, r = pairwise_scores(truth, [str(x) for x in labels])
            cells.append(f"P {p:.2f} R {r:.2f} n{len(set(labels.tolist())):2d}")
        pm, pmin, rm, rmin = _draws(*sets["ids"], rule, draws)
        print(f"{name:22s} {cells[0]:>17s} {cells[1]:>17s}   P {pm:.3f}/{pmin:.2f} R {rm:.3f}/{rmin:.2f}")


def clip() -> None:
    """The shared clip's tracks: how many people they become, and how many pairs of tracks on screen at the
    same time share one (impossible: two faces at once are two people), without and with cannot-link."""
    from batchemo import run
    from batchemo.people.cluster import cannot_link, name_people

    video = SHARED / "media" / "videos" / "short_hamilton_clip.mp4"
    if not video.exists():
        return print(f"\nclip: needs {video}")
    refs = run(video, explain=False, progress=False).videos[0].tracks  # names re-derived below
    emb, apart = np.stack([r.embedding for r in refs]), [r.span() for r in refs]
    together = cannot_link(apart)
    print(f"\nclip: {len(refs)} tracks, {sum(map(len, together.values())) // 2} pairs on screen together")
    for rule, kw in (("cw+means", {}), ("cw+means+apart (shipped)", {"apart": apart,
                                                                   "quality": np.array([r.side for r in refs])})):
        names = name_people(emb, np.array([r.weight for r in refs]), **kw)
        shared = sum(names[i] != "" and names[i] == names[j] for i, js in together.items() for j in js if i < j)
        print(f"{rule:26s} {len(set(names) - {''})} people over {sum(n != '' for n in names)} named tracks, "
              f"{shared} pairs on screen together share a person; by track: "
              + " ".join(f"{r.track}:{n or '-'}" for r, n in zip(refs, names)))


def cost(copies: int) -> None:
    """People on against off, and on with dlib's own forward pass (``BATCHEMO_EMBEDDING=dlib``, the
    embedder before LiteRT), each run in its own process as a user runs it (default --jobs)."""
    import os
    import subprocess
    import sys

    photos = SHARED / "media" / "photos"
    kinds = {"people off": (["--no-people"], {}), "people on": ([], {}),
             "people on, dlib's pass": ([], {"BATCHEMO_EMBEDDING": "dlib"})}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(copies):
            shutil.copytree(photos, Path(tmp) / "in" / f"copy{k}")
        times = {k: [] for k in kinds}
        for _ in range(3):
            for name, (flags, env) in kinds.items():
                cmd = [sys.executable, "-m", "batchemo.cli", "run", f"{tmp}/in", "--no-explain", "--no-resume",
                       "-q", "--csv", f"{tmp}/out.csv", *flags]
                t = time.perf_counter()
                subprocess.run(cmd, check=True, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - t)
        off = min(times["people off"])
        print(f"\n`batchemo run --no-explain` on {copies} copies ({9 * copies} photos), wall incl. start-up, "
              f"best of 3 each, alternating:")
        for name, ts in times.items():
            print(f"{name:24s} {min(ts):6.2f} s (runs: {', '.join(f'{t:.2f}' for t in ts)}): {min(ts) / off:.2f}x off")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=3, help="copies of the photos for the cost; 0 = skip it")
    ap.add_argument("--draws", type=int, default=200)
    a = ap.parse_args()
    grouping(a.draws)
    clip()
    if a.copies:
        cost(a.copies)


if __name__ == "__main__":
    main()
