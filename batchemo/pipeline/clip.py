"""What a video's analysis carries from one sampled frame to the next, bounded and picklable.

``ClipState`` holds the tracker, the face follower's memory, the shot-cut detector, each face's smoothed
probabilities, the moments found, a running summary per track and a filmstrip of evenly spaced frames:
numbers only, no picture. Its size depends on the faces on screen and the number of tracks, never on the
number of frames, so memory stays flat however long the video. A checkpoint is this object pickled,
with the length of the timeline spool it matches (``pipeline.spool``): a resumed video restores it and
goes on as if it had never stopped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.records import CLASSES, Faces, TimelineChunk
from ..faces.track import FaceTracker, ShotCuts, Smoother
from .moments import MomentFinder


@dataclass(slots=True)
class TrackStats:
    """The running summary of one track (one appearance of a face): what naming people and a report need.
    An hour of video holds thousands, so it is kept small: slots, and the identity sum in float32 (0.6 KB)."""

    first: float
    last: float
    samples: int = 0
    smoothed_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(CLASSES)))
    label_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(CLASSES), np.int64))
    side_sum: float = 0.0
    identity_sum: np.ndarray | None = None
    identity_n: int = 0

    def add(self, t: float, smoothed: np.ndarray, side: float, embedding: np.ndarray | None) -> None:
        self.first, self.last = min(self.first, t), max(self.last, t)
        self.samples += 1
        self.smoothed_sum += smoothed
        self.label_counts[int(np.argmax(smoothed))] += 1
        self.side_sum += side
        if embedding is not None and np.isfinite(embedding).all():
            if self.identity_sum is None:
                self.identity_sum = np.array(embedding, np.float32)
            else:
                self.identity_sum += embedding
            self.identity_n += 1


class Filmstrip:
    """At most ``size`` evenly spaced sampled frames of a stream of unknown length: (sample number, frame
    index, time, faces) each. Keeps every ``stride``-th sample; when full, drops every other kept one and
    doubles the stride."""

    def __init__(self, size: int = 12):
        self.size, self.stride, self.kept = size, 1, []

    def offer(self, n: int, frame: int, time: float, faces: int) -> None:
        if n % self.stride:
            return
        self.kept.append((n, frame, time, faces))
        if len(self.kept) > self.size:
            self.stride *= 2
            self.kept = [k for k in self.kept if k[0] % self.stride == 0]


class ClipState:
    """Everything one video's analysis carries between sampled frames (see the module docstring)."""

    def __init__(self, video: str, smooth: float | None, max_gap: float, filmstrip: int = 12):
        self.video = video
        self.tracker = FaceTracker(max_gap=max_gap)
        self.follower_last: list = []  # the face follower's memory (faces.track.FaceFollower), without its detector
        self.follower_since = 0
        self.cuts = ShotCuts()
        self.smoother = Smoother(smooth)
        self.embedded: dict[int, float] = {}  # face id -> time of its last identity embedding
        self.moments = MomentFinder(video)
        self.tracks: dict[int, TrackStats] = {}
        self.film = Filmstrip(filmstrip)
        self.samples = 0  # sampled frames done (a resume skips this many)
        self.first_time: float | None = None
        self.last_time = 0.0
        self.spool_size = 0  # bytes of the timeline spool these samples made
        self.checkpoint_time = -math.inf  # video time of the last checkpoint

    def frames(self, records: list[Faces]) -> TimelineChunk:
        """Fold classified, tracked frame records (in time order) into the state; their timeline chunk."""
        smoothed = []
        for faces in records:
            t = faces.time or 0.0
            self.first_time = t if self.first_time is None else self.first_time
            self.last_time = t
            self.film.offer(self.samples, int(faces.frame), t, len(faces))
            self.samples += 1
            s = self.smoother.update(faces.track_ids, t, faces.probabilities) if len(faces) else \
                np.zeros((0, len(CLASSES)))
            smoothed.append(s)
            for i in range(len(faces)):
                self._face(faces, i, t, s[i])
        self._forget_closed()
        return TimelineChunk.of(self.video, records, smoothed)

    def _face(self, faces: Faces, i: int, t: float, smoothed: np.ndarray) -> None:
        fid = int(faces.track_ids[i])
        box = faces.boxes[i]
        stats = self.tracks.setdefault(fid, TrackStats(t, t))
        emb = faces.embeddings[i] if faces.embeddings is not None else None
        stats.add(t, smoothed, float(min(box[2], box[3])), emb)
        if not (faces.unreadable and faces.unreadable[i]):  # a face that cannot be read is no moment to show
            self.moments.add(fid, int(faces.frame), t, smoothed, box)

    def _forget_closed(self) -> None:
        """Smoothing and moment state only for open tracks: memory bounded by the faces on screen (a
        closed track keeps its summary and its moments, a few hundred bytes)."""
        open_ids = {tr.face_id for tr in self.tracker.tracks}
        self.smoother.forget(open_ids)
        self.embedded = {k: v for k, v in self.embedded.items() if k in open_ids}
        for fid in [f for f in self.moments.faces if f not in open_ids]:
            self.moments.close(fid)
