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
