"""Following faces across video frames (a stable id per face), and smoothing each face's probabilities.

Tracking fills a ``Faces`` record's ``track_ids``; smoothing adds ``ps_*`` columns to a timeline table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .records import CLASSES, PROB_COLUMNS, Box, Faces

#: The smoothed probabilities of a timeline (equal to the raw ``p_*`` when smoothing is off).
SMOOTH_COLUMNS = [f"ps_{c}" for c in CLASSES]


@dataclass
class _Track:
    face_id: int
    box: Box
    time: float
    vx: float = 0.0  # pixels per second
    vy: float = 0.0
    hits: int = 1

    def predicted(self, t: float) -> Box:
        dt = t - self.time
        return Box(round(self.box.x + self.vx * dt), round(self.box.y + self.vy * dt), self.box.w, self.box.h)

    def update(self, box: Box, t: float) -> None:
        dt = t - self.time
        if dt > 0:
            (ox, oy), (nx, ny) = self.box.center, box.center
            vx, vy = (nx - ox) / dt, (ny - oy) / dt
            self.vx, self.vy = (vx, vy) if self.hits == 1 else (0.5 * (self.vx + vx), 0.5 * (self.vy + vy))
        self.box, self.time, self.hits = box, t, self.hits + 1


class FaceTracker:
    """Gives each face a stable ``face_id`` across frames: greedy matching on IoU, then on centre distance.

    IoU alone loses a face that moves more than its own width between samples (fast motion, low --fps), so
    each track also predicts its box from its last velocity, and a detection of similar size whose centre
    lies within ``max_shift`` face sizes of that prediction matches too. A track unseen for ``max_gap``
    seconds is closed: a face that comes back later gets a new id (we do not recognise people).
    """

    def __init__(self, iou_threshold: float = 0.3, max_shift: float = 1.0, max_gap: float = 2.0):
        self.iou_threshold, self.max_shift, self.max_gap = iou_threshold, max_shift, max_gap
        self.tracks: list[_Track] = []
        self.count = 0  # ids handed out so far

    def update(self, boxes: Sequence[Box], t: float) -> list[int]:
        """The face id of each box (same order) in the frame at time ``t``."""
        self.tracks = [tr for tr in self.tracks if t - tr.time <= self.max_gap]
        pairs = []
        for ti, tr in enumerate(self.tracks):
            pred = tr.predicted(t)
            size = math.sqrt(max(1, tr.box.w * tr.box.h))
            for di, b in enumerate(boxes):
                iou = max(pred.iou(b), tr.box.iou(b))
                if iou >= self.iou_threshold:
                    pairs.append((0, -iou, ti, di))
                    continue
                if not 0.5 <= math.sqrt(b.w * b.h) / size <= 2.0:
                    continue
                (bx, by), (px, py) = b.center, pred.center
                dist = math.hypot(bx - px, by - py) / size
                if dist <= self.max_shift:
                    pairs.append((1, dist, ti, di))
        pairs.sort()
        ids = [0] * len(boxes)
        taken: set[int] = set()
        for _, _, ti, di in pairs:
            if ti in taken or ids[di]:
                continue
            taken.add(ti)
            self.tracks[ti].update(boxes[di], t)
            ids[di] = self.tracks[ti].face_id
        for di, b in enumerate(boxes):
            if not ids[di]:
                self.count += 1
                self.tracks.append(_Track(self.count, b, t))
                ids[di] = self.count
        return ids

    def track(self, faces: Faces) -> Faces:
        """Fill ``faces.track_ids`` (boxes in original pixels, time from the record); returns the record."""
        faces.track_ids = np.array(self.update([faces.box(i) for i in range(len(faces))], faces.time or 0.0),
                                   np.int64)
        return faces


def smooth_timeline(df, tau: float | None):
    """Fill ``ps_*``, ``label_smoothed`` and ``confidence_smoothed``: per face, an exponential moving average.

    The weight of each new sample is 1 - exp(-dt / tau), with dt the time since the face's previous sample,
    so ``tau`` (seconds) means the same at any sampling rate and a face back after a gap starts afresh.
    The average is causal (it lags by about ``tau``), like a viewer's impression. tau None or 0: a copy.
    """
    raw = df[PROB_COLUMNS].to_numpy(np.float64) if len(df) else np.zeros((0, len(CLASSES)))
    out = raw.copy()
    if tau and tau > 0 and len(df):
        times = df["time"].to_numpy(np.float64)
        for idx in df.groupby("face_id", sort=False).indices.values():
            idx = idx[np.argsort(times[idx], kind="stable")]
            state, last = raw[idx[0]].copy(), times[idx[0]]
            for i in idx[1:]:
                a = 1.0 - math.exp(-max(0.0, times[i] - last) / tau)
                state += a * (raw[i] - state)
                out[i], last = state, times[i]
    df[SMOOTH_COLUMNS] = out
    df["label_smoothed"] = [CLASSES[i] for i in out.argmax(1)] if len(df) else []
    df["confidence_smoothed"] = out.max(1) if len(df) else []
    return df


class FaceFollower:
    """A detector that runs in full only every ``every``-th frame and follows the faces it found between.

    Between full detections each face is followed by dlib's 5-point landmark predictor (~1 ms a face),
    run on its last box moved by its last motion: the box moves with the landmarks' centre and scales
    with their spread. A face whose landmarks jump (centre by more than ``max_step`` of its box, or spread
    by more than 30%) or leave their box has drifted: it is dropped from that frame and the next frame is
    searched in full. So a face that turns away is found again by the detector, which (yunet) also finds
    profiles, and the tracker joins it to its track. Frames must come in order; call ``detect`` per frame.
    ``full`` says whether the last call searched the whole frame (identity embeddings are taken there).
    """

    def __init__(self, detector, every: int = 5, max_step: float = 0.35):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.detector, self.every, self.max_step = detector, int(every), float(max_step)
        self.name = getattr(detector, "name", "")
        self.landmarks = getattr(detector, "landmarks", False)
        self.last: list = []  # the previous frame's Detections
        self.motion: list = []  # per previous detection: (dx, dy) px per frame
        self.since = 0  # frames since the last full detection
        self.full = True

    def detect(self, rgb: np.ndarray) -> list:
        """The faces of this frame (``Detection``s in its pixels, left to right)."""
        if self.every == 1 or not self.landmarks or not self.last or self.since + 1 >= self.every:
            return self._full(rgb)
        followed, motion = [], []
        for det, (dx, dy) in zip(self.last, self.motion):
            moved = self._follow(rgb, det, dx, dy)
            if moved is None:  # drifted: search this frame in full
                return self._full(rgb)
            followed.append(moved)
            motion.append((moved.box.x - det.box.x, moved.box.y - det.box.y))
        self.last, self.motion, self.since, self.full = followed, motion, self.since + 1, False
        return sorted(followed, key=lambda d: (d.box.x, d.box.y))

    def _full(self, rgb: np.ndarray) -> list:
        found = self.detector.detect(rgb)
        self.last, self.motion, self.since, self.full = found, [(0, 0)] * len(found), 0, True
        return found

    def _follow(self, rgb: np.ndarray, det, dx: float, dy: float):
        """``det`` one frame later: the landmarks refitted on its box moved by (dx, dy); None if drifted."""
        from .detect import Detection, _landmark_model, _dlib

        if det.landmarks is None:
            return None
        b = det.box
        x, y = b.x + dx, b.y + dy
        # the landmark model's box, as the detector framed it (LANDMARK_BOX), moved along
        ldx, ldy, k = getattr(self.detector, "LANDMARK_BOX", (0.0, 0.0, 1.0))
        lx, ly, side = x + ldx * b.w, y + ldy * b.w, k * b.w
        rect = _dlib().rectangle(round(lx), round(ly), round(lx + side), round(ly + side))
        shape = _landmark_model()(rgb, rect)
        marks = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        old = det.landmarks
        shift = marks.mean(0) - old.mean(0)
        spread_old = float(np.linalg.norm(old - old.mean(0), axis=1).mean())
        spread = float(np.linalg.norm(marks - marks.mean(0), axis=1).mean())
        if spread_old <= 0 or not 0.77 < spread / spread_old < 1.3 or np.hypot(*shift) > self.max_step * b.w:
            return None
        h, w = rgb.shape[:2]
        if not ((marks[:, 0] >= 0) & (marks[:, 0] < w) & (marks[:, 1] >= 0) & (marks[:, 1] < h)).all():
            return None
        s = spread / spread_old
        cx, cy = b.center[0] + shift[0], b.center[1] + shift[1]
        nw = b.w * s
        box = Box(round(cx - nw / 2), round(cy - nw / 2), round(nw), round(nw))
        return Detection(box, det.score, marks)
