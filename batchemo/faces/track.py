"""Following faces across video frames (a stable id per face), and smoothing each face's probabilities.

Tracking fills a ``Faces`` record's ``track_ids``; ``Smoother`` averages each face's probabilities over
time as the frames stream (``smooth_timeline``: the same on a finished table).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.records import CLASSES, PROB_COLUMNS, Box, Faces

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

    def cut(self) -> None:
        """A shot cut: close every track, so no face is joined to one at the same place in another shot."""
        self.tracks = []

    def track(self, faces: Faces) -> Faces:
        """Fill ``faces.track_ids`` (boxes in original pixels, time from the record); returns the record."""
        faces.track_ids = np.array(self.update([faces.box(i) for i in range(len(faces))], faces.time or 0.0),
                                   np.int64)
        return faces


class Smoother:
    """Each face's probabilities smoothed over time as frames come in: an exponential moving average.

    The weight of each new sample is 1 - exp(-dt / tau), with dt the time since the face's previous sample,
    so ``tau`` (seconds) means the same at any sampling rate. The average is causal (it lags by about
    ``tau``), like a viewer's impression, so it can be computed as a video streams. A face unseen for a
    while keeps its state: the next sample's large dt gives it almost all the weight. tau None or 0: off
    (each sample as it is). Picklable: a video's checkpoint holds it.
    """

    def __init__(self, tau: float | None):
        self.tau = float(tau) if tau and tau > 0 else 0.0
        self.state: dict[int, tuple[np.ndarray, float]] = {}  # face id -> (average, time of its last sample)

    def update(self, face_ids: Sequence[int], t: float, probabilities: np.ndarray) -> np.ndarray:
        """The smoothed (n, 7) float64 probabilities of one frame's faces (ids, time ``t``, raw (n, 7))."""
        out = np.array(probabilities, np.float64, copy=True).reshape(len(face_ids), len(CLASSES))
        if not self.tau:
            return out
        for i, fid in enumerate(face_ids):
            prev = self.state.get(int(fid))
            if prev is not None:
                a = 1.0 - math.exp(-max(0.0, t - prev[1]) / self.tau)
                out[i] = prev[0] + a * (out[i] - prev[0])
            self.state[int(fid)] = (out[i].copy(), t)
        return out

    def forget(self, keep: set[int]) -> None:
        """Drop the faces not in ``keep`` (closed tracks): memory stays bounded however long the video."""
        self.state = {k: v for k, v in self.state.items() if k in keep}


def smooth_timeline(df, tau: float | None):
    """Fill ``ps_*``, ``label_smoothed`` and ``confidence_smoothed`` of a timeline table (``p_*`` raw, one row
    per face per frame, in time order per face) with ``Smoother``: the same numbers a streamed video gets."""
    raw = df[PROB_COLUMNS].to_numpy(np.float64) if len(df) else np.zeros((0, len(CLASSES)))
    out = raw.copy()
    if len(df):
        times, ids = df["time"].to_numpy(np.float64), df["face_id"].to_numpy()
        smoother = Smoother(tau)
        for i in np.argsort(times, kind="stable"):
            out[i] = smoother.update([ids[i]], times[i], raw[i][None])[0]
    df[SMOOTH_COLUMNS] = out
    df["label_smoothed"] = [CLASSES[i] for i in out.argmax(1)] if len(df) else []
    df["confidence_smoothed"] = out.max(1) if len(df) else []
    return df


class FaceFollower:
    """A detector that searches the whole frame only every ``every``-th frame and follows its faces between.

    Between full searches each face is looked for again by the same detector in a small window around
    its last box (``margin`` box widths on each side, resized so the face is ``face_px`` wide: about a
    tenth of a 640x360 frame's pixels for a 40-px face), and its landmarks are refitted on the frame
    itself. A face not found again in its window (it turned away, left, or the window lost it) means the
    frame is searched in full, at once. So a face that turns is found again by the detector (yunet also
    finds profiles) and the tracker joins it to its track. Frames must come in order, one ``detect`` call
    each; ``full`` says whether the last call searched the whole frame.
    """

    def __init__(self, detector, every: int = 5, margin: float = 0.6, face_px: int = 48):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.detector, self.every, self.margin, self.face_px = detector, int(every), float(margin), int(face_px)
        self.name = getattr(detector, "name", "")
        self.last: list = []  # the previous frame's Detections
        self.since = 0  # frames since the last full search
        self.full = True

    def detect(self, rgb: np.ndarray) -> list:
        """The faces of this frame (``Detection``s in its pixels, left to right)."""
        if self.every == 1 or not self.last or self.since + 1 >= self.every:
            return self._full(rgb)
        followed = []
        for det in self.last:
            again = self._follow(rgb, det)
            if again is None:
                return self._full(rgb)
            followed.append(again)
        self.last, self.since, self.full = followed, self.since + 1, False
        return sorted(followed, key=lambda d: (d.box.x, d.box.y))

    def _full(self, rgb: np.ndarray) -> list:
        self.last, self.since, self.full = self.detector.detect(rgb), 0, True
        return self.last

    def _follow(self, rgb: np.ndarray, det):
        """``det``'s face in this frame, searched in a window around its last box; None if not there."""
        from .detect import Detection, _resize

        b, (h, w) = det.box, rgb.shape[:2]
        pad = self.margin * b.w
        x0, y0 = max(0, int(b.x - pad)), max(0, int(b.y - pad))
        x1, y1 = min(w, int(b.x + b.w + pad)), min(h, int(b.y + b.h + pad))
        k = min(1.0, self.face_px / max(b.w, 1))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        crop = np.ascontiguousarray(_resize(rgb[y0:y1, x0:x1], k))
        marks_wanted = getattr(self.detector, "landmarks", False)
        try:  # landmarks are refitted below on the frame itself, not on the small window
            if marks_wanted:
                self.detector.landmarks = False
            found = self.detector.detect(crop)
        finally:
            if marks_wanted:
                self.detector.landmarks = True
        here = [Box(round(x0 + d.box.x / k), round(y0 + d.box.y / k), round(d.box.w / k), round(d.box.h / k))
                for d in found]
        best = max(range(len(found)), key=lambda i: here[i].iou(b), default=None)
        if best is None or here[best].iou(b) < 0.3:
            return None
        box = here[best]
        marks = self.detector._landmarks(rgb, box.x, box.y, box.w, box.h) if marks_wanted else None
        return Detection(box, found[best].score, marks)


class ShotCuts:
    """Tells a shot cut between consecutive sampled frames: the colour histograms (hue x saturation, 16 x 8
    bins, of a 64x36 thumbnail) correlate below ``threshold``.

    On the shared clip its three cuts correlate 0.42-0.68 frame to frame (0.36-0.56 at 2 fps) and every
    other pair at least 0.93 (0.88 at 2 fps). Without it a face at the place of a face of the last shot
    took over its track (and its identity: the performer and an audience member became one person).
    """

    def __init__(self, threshold: float = 0.8):
        self.threshold, self.last = float(threshold), None

    def is_cut(self, rgb: np.ndarray) -> bool:
        """True if ``rgb`` (uint8 HxWx3) starts a new shot; call once per sampled frame, in order."""
        import cv2

        hsv = cv2.cvtColor(cv2.resize(rgb, (64, 36), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        hist = cv2.normalize(hist, hist).flatten()
        cut = self.last is not None and cv2.compareHist(self.last, hist, cv2.HISTCMP_CORREL) < self.threshold
        self.last = hist
        return bool(cut)
