"""Faces as people see them: one reference per photo face or video track, grouped into people and
summarised (a headline emotion, the most and least certain examples).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cluster import TOLERANCE, KnownFaces, name_people

#: A person's headline is "mixed" when their mean probabilities' top class leads the next by less than this.
MIXED_MARGIN = 0.15
MIXED = "mixed"


def headline(shares: dict[str, float]) -> str:
    """A person's headline emotion from the share of their faces (or sampled frames) labelled each emotion,
    the shares a report's bars show: the top label, or MIXED when it leads the next by less than
    MIXED_MARGIN (nothing dominates). One rule for the headline and the bars, so they never disagree."""
    if not shares:
        return ""
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < MIXED_MARGIN:
        return MIXED
    return ranked[0][0]


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
    headline emotion their shares give (``headline``: "mixed" when nothing dominates), and the faces worth
    showing: the most typical (nearest the person's mean embedding), the most and the least confident."""
    from ..core.records import CLASSES
    from ..emotions.doubt import uncertain_label

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
            "tracks": len(tracks), "videos": len({r.source for r in tracks}),
            "frames": int(sum(r.weight for r in tracks)),
            "weight": float(weights.sum()), "shares": shares, "mean_probs": mean_probs,
            "dominant": headline(shares),  # their most frequent label, or "mixed" (the bars' own rule)
            "dominant_uncertain": uncertain_label(max(mean_probs.values())),
            "typical": typical,
            "most": max(photos, key=lambda r: r.confidence) if photos else None,
            "least": min(photos, key=lambda r: r.confidence) if len(photos) > 1 else None,
            "appearances": sorted(tracks, key=lambda r: (r.source, r.time or 0.0)),
        })
    people.sort(key=lambda p: (-p["weight"], p["name"]))
    return people[:top]
