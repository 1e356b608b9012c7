"""The few frames of a video a report shows, decoded again once the video is analysed and its people named.

A video's analysis keeps no picture (memory stays flat however long it is). A report shows a fixed budget
of them: a filmstrip of evenly spaced frames and, per person, the moments worth seeing (``moments.strongest``:
the strongest moment of each emotion, then the changes of mood). Those frames are read again here by
seeking, each face boxed with the label the timeline shows (smoothed), and the first moments of each
person explained with LIME. Arrays only: a report encodes them.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..core.records import CLASSES, Box, Explanation, Moment, Shot, TimelineChunk

#: People shown per video, moments per person (fewer when many people share MAX_KEYFRAMES): a report's
#: size stays bounded however long the video.
PEOPLE_SHOWN = 12
PER_PERSON = 8
MAX_KEYFRAMES = 48
#: Long side of a frame kept for the report, pixels.
THUMB_SIDE = 320


@dataclass
class Keyframe:
    """A moment shown in a report: the frame (small, every face to be boxed), the face in colour and as
    the CNN read it, its smoothed label and probabilities, and LIME's heatmap when explained."""

    moment: Moment
    person: str
    shot: Shot
    face: np.ndarray  # uint8 (112, 112, 3)
    crop: np.ndarray  # uint8 (48, 48)
    probabilities: dict[str, float]  # smoothed
    uncertain: bool
    explanation: Explanation | None = None

    @property
    def label(self) -> str:
        return self.moment.label


@dataclass
class Still:
    """One frame of a video's filmstrip."""

    frame: int
    time: float
    faces: int
    shot: Shot | None


@dataclass
class VideoPictures:
    """What a report shows of one video, and how much it left out."""

    filmstrip: list[Still] = field(default_factory=list)
    keyframes: list[Keyframe] = field(default_factory=list)
    moments_found: int = 0
    unreadable_frames: int = 0  # wanted frames that could not be decoded again


def video_pictures(analysis, model=None, detector=None, explain: int = 1, lime_samples: int = 300, seed: int = 0,
                   jobs: int = 2, per_person: int = PER_PERSON) -> VideoPictures:
    """Decode the frames a report shows of ``analysis`` (a ``video.VideoAnalysis`` whose tracks are named),
    fill ``analysis.pictures`` and return it. ``explain``: LIME for that many moments per person (their
    strongest), with ``model``; ``detector`` re-finds each face's landmarks for its aligned crop."""
    from .moments import strongest, who

    shown = shown_people(analysis)
    person_of = analysis.person_of()
    per_person = min(per_person, max(1, MAX_KEYFRAMES // max(1, len(shown))))  # every person shown gets some
    chosen = strongest([m for m in analysis.moments if who(m.face_id, person_of) in shown], person_of, per_person,
                       [m for m in analysis.typical if who(m.face_id, person_of) in shown])
    strip = {f for f, _, _ in analysis.filmstrip}
    wanted = {m.frame for m in chosen} | strip
    at = _faces_at(analysis.chunks(), wanted)
    shots: dict[int, Shot] = {}
    keys: dict[int, Keyframe] = {}
    for frame, rgb in _decode(analysis.info["video"], sorted(wanted)):  # one frame in memory at a time
        if frame in strip:
            shots[frame] = _shot(rgb, at.get(frame, []))
        for i, m in enumerate(chosen):
            if m.frame == frame:
                keys[i] = _keyframe(m, rgb, at.get(frame, []), person_of.get(m.face_id, ""), detector)
    read = set(shots) | {chosen[i].frame for i in keys}
    pics = VideoPictures(moments_found=len(analysis.moments), unreadable_frames=len(wanted - read),
                         filmstrip=[Still(f, t, n, shots.get(f)) for f, t, n in analysis.filmstrip],
                         keyframes=[keys[i] for i in sorted(keys)])
    if explain and model is not None:
        _explain(pics.keyframes, model, explain, lime_samples, seed, jobs)
    analysis.pictures = pics
    return pics


def shown_people(analysis, top: int = PEOPLE_SHOWN) -> set[str]:
    """Who a report shows of a video: the ``top`` people (a track without a person counts as its own, "face
    N") seen longest, each in at least ``min_face_samples`` sampled frames (shorter ones are often false)."""
    from .moments import who

    person_of = analysis.person_of()
    samples: dict[str, float] = {}
    for t in analysis.tracks:
        k = who(t.track, person_of)
        samples[k] = samples.get(k, 0.0) + t.weight
    least = int(analysis.info.get("min_face_samples") or 3)
    ranked = sorted((k for k, n in samples.items() if n >= least), key=lambda k: -samples[k])
    return set(ranked[:top])


def _faces_at(chunks, frames: set[int]) -> dict[int, list[tuple]]:
    """frame -> [(face id, Box, smoothed (7,), unreadable reason)] of the wanted frames, in one pass."""
    out: dict[int, list[tuple]] = {}
    for chunk in chunks:
        chunk: TimelineChunk
        for i in np.flatnonzero(np.isin(chunk.frame, list(frames))):
            out.setdefault(int(chunk.frame[i]), []).append(
                (int(chunk.face_id[i]), Box(*map(int, chunk.boxes[i])), chunk.smoothed[i], chunk.unreadable[i]))
    return out


def _decode(path: str, frames: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB) of the wanted frame indices, in order, by seeking (a frame the decoder cannot reach
    again is left out; so is every frame of a video gone or unreadable since)."""
    import cv2

    from ..sources.video import open_video

    try:
        cap, _ = open_video(path)
    except Exception:  # gone or unreadable since: no picture, the report says so
        return
    try:
        for f in frames:
            cap.set(cv2.CAP_PROP_POS_FRAMES, f)
            ok, bgr = cap.read()
            if ok and bgr is not None:
                yield f, (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3
                          else cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB))
    finally:
        cap.release()


def _shot(rgb: np.ndarray, faces: list[tuple]) -> Shot:
    """The frame, small, with every face of the timeline at it to box: (Box, smoothed label, confidence, id)."""
    from ..sources.images import fit

    thumb, f = fit(rgb, THUMB_SIDE)
    marks = [(box, CLASSES[int(np.argmax(p))], float(np.max(p)), fid) for fid, box, p, _ in faces]
    return Shot(thumb, f, marks)


def _keyframe(m: Moment, rgb: np.ndarray, faces: list[tuple], person: str, detector) -> Keyframe:
    """The pictures of one moment: its frame, and its face cut from it (aligned by landmarks when the
    detector finds it again there, else the box)."""
    from ..emotions.doubt import uncertain_label
    from ..faces.align import crop_face
    from ..faces.detect import to_gray
    from ..sources.images import square

    box = Box(*m.box)
    mine = next((f for f in faces if f[0] == m.face_id), None)
    smoothed = mine[2] if mine is not None else np.eye(len(CLASSES))[CLASSES.index(m.label)] * m.confidence
    x, y = max(0, box.x), max(0, box.y)
    crop = _aligned(rgb, box, detector)
    if crop is None:
        crop = crop_face(to_gray(rgb), box)
    return Keyframe(m, person, _shot(rgb, faces), square(rgb[y: y + box.h, x: x + box.w], 112), crop,
                    dict(zip(CLASSES, map(float, smoothed))),
                    uncertain_label(float(smoothed[CLASSES.index(m.label)])) or bool(mine is not None and mine[3]))


def _aligned(rgb: np.ndarray, box: Box, detector) -> np.ndarray | None:
    """The face at ``box`` found again by ``detector`` in its neighbourhood and aligned, or None."""
    if detector is None:
        return None
    from ..faces.align import align_face
    from ..faces.detect import to_gray

    h, w = rgb.shape[:2]
    pad = box.w // 2
    x0, y0, x1, y1 = max(0, box.x - pad), max(0, box.y - pad), min(w, box.x + box.w + pad), min(h, box.y + box.h + pad)
    try:
        found = detector.detect(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    except Exception:  # a detector that fails on a region: the box crop instead
        return None
    here = Box(box.x - x0, box.y - y0, box.w, box.h)
    best = max(found, key=lambda d: d.box.iou(here), default=None)
    if best is None or best.box.iou(here) < 0.3:
        return None
    return align_face(to_gray(rgb[y0:y1, x0:x1]), best)


def _explain(keyframes: list[Keyframe], model, per_person: int, lime_samples: int, seed: int, jobs: int) -> None:
    """LIME for each person's first ``per_person`` keyframes (their strongest peaks first), for the label the
    timeline shows."""
    from ..explain.classify import classify
    from ..explain.lime import LimeSettings

    seen: dict[str, int] = {}
    chosen = []
    for k in sorted(keyframes, key=lambda k: (k.moment.kind != "peak", -k.moment.confidence)):
        key = k.person or f"face #{k.moment.face_id}"
        if seen.get(key, 0) < per_person:
            seen[key] = seen.get(key, 0) + 1
            chosen.append(k)
    if not chosen:
        return
    _, exps = classify(model, np.stack([k.crop for k in chosen]), LimeSettings(num_samples=lime_samples, seed=seed),
                       also_explain=[[k.label] for k in chosen], n_jobs=jobs)
    for k, e in zip(chosen, exps):
        k.explanation = e.get(k.label)


def pictures_of(videos: list, model=None, detector: str | object = "auto", detector_options: dict | None = None,
                explain: int = 1, lime_samples: int = 300, seed: int = 0, jobs: int = 2) -> None:
    """``video_pictures`` for every video analysed (not failed), with this process's model and detector
    (``model``: an EmotionModel, a path or None for the shipped one; ``detector``: a name, as the run used,
    or a detector)."""
    from ..core.records import STATUS_FAILED
    from .engine import worker_detector, worker_model

    todo = [v for v in videos if v.status != STATUS_FAILED]
    if not todo:
        return
    em = model if hasattr(model, "predict") else worker_model(str(model) if model else None)
    det = worker_detector(detector, dict(detector_options or {})) if isinstance(detector, str) else detector
    for v in todo:
        video_pictures(v, em, det, explain, lime_samples, seed, jobs)
