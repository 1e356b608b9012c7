"""People: who each face is, across a whole collection and through videos.

Every face gets dlib's 128-d embedding (``dlib_face_recognition_resnet_model_v1`` from face-recognition-
models, computed on the face aligned by its 5 landmarks, as face_recognition does; run on LiteRT by
``faces.embed``). Faces are then grouped into people over the whole run with dlib's Chinese-whispers
clustering on the graph of pairs closer than a threshold, and clusters that match a known person
(``--known-faces DIR``, one sub-folder of photos per person, face_recognition's convention) take that
name. Embeddings identify people: they never enter a report, and reach a table only when asked
(``--embeddings``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..faces.embed import EMBED_DIM

#: Two faces closer than this (euclidean, 128-d) are linked as the same person (``--tolerance``).
#: Measured on ../shared/identities (8 people, 55 photos, 3 distractors) and the shared photos
#: (benchmarks/people_quality.py, docs/people.md): the same person's faces are at most 0.50 apart, different
#: people at least 0.64; 0.55 sits between, with precision 1.00 and recall 1.00 on both, and on draws of
#: only 2-3 photos per person. Above 0.6 different people start to merge (0.65: precision 0.98).
TOLERANCE = 0.55
#: Second pass: two clusters whose mean embeddings are closer than the tolerance minus this are one person
#: (a mean is steadier than any one face, so a person split by one poor photo is joined again).
MEAN_MERGE_GAP = 0.05
#: A face's distance to a known person's nearest photo must be below this to take that person's name.
KNOWN_TOLERANCE = 0.55


def cluster(embeddings: np.ndarray, tolerance: float = TOLERANCE, merge: bool = True,
            apart: list[tuple[str, float, float]] | None = None, quality: np.ndarray | None = None) -> np.ndarray:
    """A cluster index per embedding (rows of NaN get -1), by Chinese whispers over pairs < ``tolerance``,
    clusters holding two faces that cannot be one person split (``apart``, see ``cannot_link``), then
    (``merge``) clusters whose means are closer than ``tolerance - MEAN_MERGE_GAP`` joined unless they conflict.

    Chinese whispers (dlib) is what dlib's own face clustering example uses: no number of people to guess,
    and unlike plain linkage one blurred face bridging two people does not merge them wholesale.
    ``quality`` (n,): which faces seed a split cluster's people first (larger first; default all equal).
    """
    import dlib

    ok = np.flatnonzero(np.isfinite(embeddings).all(1))
    labels = np.full(len(embeddings), -1, np.int64)
    if len(ok) == 0:
        return labels
    if len(ok) <= KNN_ABOVE:
        found = dlib.chinese_whispers_clustering([dlib.vector(v.astype(np.float64)) for v in embeddings[ok]],
                                                 float(tolerance))
    else:
        found = dlib.chinese_whispers(_near_edges(embeddings[ok], tolerance))
    labels[ok] = found
    conflicts = cannot_link(apart) if apart is not None else None
    if conflicts:
        q = np.zeros(len(embeddings)) if quality is None else np.asarray(quality, np.float64)
        labels = split_conflicts(embeddings, labels, conflicts, tolerance, q)
    return merge_close_clusters(embeddings, labels, tolerance - MEAN_MERGE_GAP, conflicts) if merge else labels


#: Above this many faces (a long video's tracks), the graph Chinese whispers walks links each face to its
#: KNN nearest neighbours under the tolerance, not to every one: with 6,000 tracks of 14 people (an hour
#: of the shared clip, joined) the full graph held a million links and took 100 MB and 8 s; the nearest
#: neighbours give the same people in a tenth of the time and memory (benchmarks/people_quality.py).
KNN_ABOVE, KNN = 2000, 32


def _near_edges(embeddings: np.ndarray, tolerance: float, k: int = KNN, block: int = 128) -> list[tuple]:
    """(i, j) with i <= j, sorted and unique: each face and its ``k`` nearest faces closer than ``tolerance``,
    whichever of the two found the other (so the graph does not depend on the faces' order), and (i, i).
    Computed in blocks of rows so that no (n, n) matrix is held; pairs gathered as arrays and made tuples
    once (dlib's graph), so an hour's 100,000 links cost a few MB."""
    e = embeddings.astype(np.float32)
    n = len(e)
    sq = (e * e).sum(1)
    codes = [np.arange(n, dtype=np.int64) * (n + 1)]  # (i, i), coded i * n + j
    for start in range(0, n, block):
        rows = e[start: start + block]
        d = np.sqrt(np.maximum(sq[start: start + block, None] + sq[None] - 2 * rows @ e.T, 0.0))
        near = np.argpartition(d, min(k, n - 1), axis=1)[:, : k + 1]
        i = np.repeat(np.arange(start, start + len(rows), dtype=np.int64), near.shape[1])
        j = near.ravel().astype(np.int64)
        keep = (j != i) & (np.take_along_axis(d, near, axis=1).ravel() < tolerance)
        codes.append(np.minimum(i, j)[keep] * n + np.maximum(i, j)[keep])
    pairs = np.unique(np.concatenate(codes))
    return list(zip((pairs // n).tolist(), (pairs % n).tolist()))


def cannot_link(apart: list[tuple[str, float, float]]) -> dict[int, set[int]]:
    """Per index, the indices that can never be the same person: ``apart[i]`` is (source, start, end), and
    two faces of one source whose closed spans [start, end] (seconds) overlap are on screen together. A
    photo's faces are (path, 0, 0): all of one photo conflict. Sorted sweep per source: O(n log n + pairs).
    """
    out: dict[int, set[int]] = {}
    by: dict[str, list[int]] = {}
    for i, (src, _, _) in enumerate(apart):
        by.setdefault(src, []).append(i)
    for idx in by.values():
        idx.sort(key=lambda i: (apart[i][1], i))
        for a, i in enumerate(idx):
            for j in idx[a + 1:]:
                if apart[j][1] > apart[i][2]:
                    break
                out.setdefault(i, set()).add(j)
                out.setdefault(j, set()).add(i)
    return out


def split_conflicts(embeddings: np.ndarray, labels: np.ndarray, conflicts: dict[int, set[int]],
                    tolerance: float, quality: np.ndarray) -> np.ndarray:
    """``labels`` with every cluster that holds two conflicting faces re-grouped: its members, best
    ``quality`` first (ties by index, so deterministic), each join the nearest sub-cluster (by mean
    embedding, closer than ``tolerance``) holding none of its conflicts, else seed a new one."""
    labels = labels.copy()
    fresh = int(labels.max()) + 1
    for c in sorted(set(labels.tolist()) - {-1}):
        members = np.flatnonzero(labels == c)
        inside = set(members.tolist())
        if not any(conflicts.get(i, set()) & inside for i in members.tolist()):
            continue
        groups: list[list[int]] = []
        for i in sorted(members.tolist(), key=lambda i: (-quality[i], i)):
            best, best_d = None, tolerance
            for g in groups:
                if conflicts.get(i, set()).isdisjoint(g):
                    d = float(np.linalg.norm(embeddings[g].mean(0) - embeddings[i]))
                    if d < best_d:
                        best, best_d = g, d
            if best is None:
                groups.append([i])
            else:
                best.append(i)
        for g in groups[1:]:
            labels[g] = fresh
            fresh += 1
    return labels


def merge_close_clusters(embeddings: np.ndarray, labels: np.ndarray, distance: float,
                         conflicts: dict[int, set[int]] | None = None) -> np.ndarray:
    """``labels`` with clusters joined while the two nearest cluster means are closer than ``distance`` and,
    given ``conflicts`` (``cannot_link``), no face of one conflicts with a face of the other.

    ``embeddings`` (n, 128), ``labels`` (n,) int, -1 = no cluster (left alone). Clusters are few (people),
    so the quadratic search over their means is cheap.
    """
    labels = labels.copy()
    while True:
        ids = sorted(set(labels.tolist()) - {-1})
        if len(ids) < 2:
            return labels
        means = np.stack([embeddings[labels == c].mean(0) for c in ids])
        d = np.linalg.norm(means[:, None] - means[None], axis=2)
        np.fill_diagonal(d, np.inf)
        pos = {c: k for k, c in enumerate(ids)}
        for i, js in (conflicts or {}).items():
            for j in js:
                if labels[i] >= 0 and labels[j] >= 0:
                    d[pos[int(labels[i])], pos[int(labels[j])]] = np.inf
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        if d[i, j] >= distance:
            return labels
        labels[labels == ids[j]] = ids[i]


@dataclass
class KnownFaces:
    """People named by a folder, ``DIR/<name>/*.jpg``, one sub-folder of photos per person: an embedding per
    photo with its person's name (``engine.load_known_faces`` reads the folder)."""

    names: list[str] = field(default_factory=list)  # one per embedding
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, EMBED_DIM), np.float32))
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo, reason)

    def name(self, embedding: np.ndarray, tolerance: float = KNOWN_TOLERANCE) -> str:
        """The known person nearest to ``embedding`` if closer than ``tolerance``, else ""."""
        if not len(self.names):
            return ""
        d = np.linalg.norm(self.embeddings - embedding, axis=1)
        k = int(np.argmin(d))
        return self.names[k] if d[k] < tolerance else ""


def name_people(embeddings: np.ndarray, weights: np.ndarray | None = None, known: KnownFaces | None = None,
                tolerance: float = TOLERANCE, apart: list[tuple[str, float, float]] | None = None,
                quality: np.ndarray | None = None) -> list[str]:
    """A person name per embedding: ``person_1``, ``person_2``, ... in order of first appearance (the order of
    ``embeddings``: photos as found, then each video's tracks as they start), so the same media numbers
    the same people whichever command reads it; or a known person's name; "" for a face without one.
    ``weights`` (a video track counts its samples) decide which of two clusters keeps a known name.

    A cluster takes a known name when its mean embedding is close to that person's photos; two clusters
    matching the same known person share the name (they were one person all along), unless they were seen
    together (``apart``): then the larger keeps it and the other is numbered. ``apart`` and
    ``quality``: faces that can never be one person, and who seeds a split first (``cluster``).
    """
    labels = cluster(embeddings, tolerance, apart=apart, quality=quality)
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)
    sizes = {c: weights[labels == c].sum() for c in set(labels.tolist()) if c >= 0}
    order = sorted(sizes, key=lambda c: (-sizes[c], int(np.flatnonzero(labels == c)[0])))
    conflicts = cannot_link(apart) if apart is not None else {}
    names: dict[int, str] = {}
    for c in order:
        named = known.name(embeddings[labels == c].mean(0)) if known is not None else ""
        faces = np.flatnonzero(labels == c)
        rivals = [np.flatnonzero(labels == o) for o, k in names.items() if k == named]
        if named and any(_clash(faces, r, conflicts) for r in rivals):
            named = ""  # seen together with the larger cluster that has this name: someone else
        names[c] = named
    unnamed = sorted((c for c, k in names.items() if not k), key=lambda c: int(np.flatnonzero(labels == c)[0]))
    for n, c in enumerate(unnamed, 1):
        names[c] = f"person_{n}"
    return [names.get(int(c), "") for c in labels]


def _clash(a: np.ndarray, b: np.ndarray, conflicts: dict[int, set[int]]) -> bool:
    """Whether any face of ``a`` can never be the same person as any face of ``b`` (``cannot_link``)."""
    return any(conflicts.get(int(i), set()).intersection(b.tolist()) for i in a)


def pairwise_scores(truth: list[str], predicted: list[str]) -> tuple[float, float]:
    """Pairwise precision and recall of a grouping: of the pairs put together, the share that are the same
    person; of the pairs that are the same person, the share put together."""
    same_pred = same_true = both = 0
    for i in range(len(truth)):
        for j in range(i + 1, len(truth)):
            p = predicted[i] != "" and predicted[i] == predicted[j]
            t = truth[i] == truth[j]
            same_pred += p
            same_true += t
            both += p and t
    return (both / same_pred if same_pred else 1.0), (both / same_true if same_true else 1.0)
