"""The moments of a video worth jumping to, found on the smoothed timeline as it streams.

Two kinds, per face (track), in ``core.records.Moment``:

* a **peak**: the face's strongest moment of an emotion, the sample where the smoothed probability of its
  smoothed label is highest, among runs of that label that held at least ``HOLD`` seconds and reached
  ``MIN_CONFIDENCE`` (a label under it is uncertain: not a moment to show). One per face and emotion.
* a **change** of mood: the smoothed label went from A to B, each held at least ``HOLD`` seconds (short
  flickers between them are stepped over: A, a blip, then B is one change A -> B, at the time B's run
  began).

``HOLD`` was chosen on the smoothed timelines of the shared clip and of a 10-minute video joined from it
(``benchmarks/moments.py``): see its constant. Memory is bounded per face (at most 7 peaks and
``MAX_CHANGES`` changes, the longest-held kept) and a closed face's state is folded into its moments.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.records import CLASSES, Moment

#: Seconds a smoothed label must hold to count as a mood (a run) rather than a flicker. Measured by
#: benchmarks/moments.py on the shared clip joined to 10 minutes (2 fps, 1 s smoothing): at 0.5 s, 6.0 changes
#: a minute, 7% of them flickers undone within 3 s; at 1 s, 3.8 and none; at 1.5 s, 1.2 and none; from 2 s,
#: none at all. 1.5 s keeps the moods held longest: a long video's report shows only a few per person.
HOLD = 1.5
#: A peak must reach this smoothed probability (below it the label is uncertain: emotions.doubt).
MIN_CONFIDENCE = 0.5
#: At most this many changes kept per face (the longest-held): a face on screen for hours stays bounded.
MAX_CHANGES = 24


@dataclass
class _Run:
    """The current run of one smoothed label of one face."""

    label: int
    start: float  # time of its first sample
    start_frame: int
    start_box: tuple
    last: float  # time of its latest sample
    best: float = -1.0  # its highest smoothed probability so far
    best_at: tuple = ()  # (frame, time, box) of it
    start_p: float = 0.0  # its smoothed probability at its first sample (a change is shown there)

    @property
    def held(self) -> float:
        return self.last - self.start


@dataclass
class _Face:
    """One face's moment state: its current run, the last run that held, its peaks and its changes."""

    run: _Run | None = None
    settled: int = -1  # the label of the last run that held HOLD seconds (-1: none yet)
    peaks: dict = field(default_factory=dict)  # label index -> Moment
    changes: list = field(default_factory=list)
    change_open: Moment | None = None  # the latest change, its ``held`` still growing
    typical: Moment | None = None  # its most confident sample of all, a picture for a face without a moment


class MomentFinder:
    """Feed it each frame's smoothed faces in time order; ``moments()`` gives what was found so far.

    Picklable: a video's checkpoint holds it, so a resumed video finds the same moments.
    """

    def __init__(self, video: str, hold: float = HOLD, min_confidence: float = MIN_CONFIDENCE):
        self.video, self.hold, self.min_confidence = video, float(hold), float(min_confidence)
        self.faces: dict[int, _Face] = {}  # the faces on screen
        self.done: list[Moment] = []  # the moments of faces gone
        self.done_typical: list[Moment] = []

    def add(self, face_id: int, frame: int, time: float, smoothed: np.ndarray, box) -> None:
        """One sample of one face: its (7,) smoothed probabilities and box (x, y, w, h, original pixels)."""
        face = self.faces.setdefault(int(face_id), _Face())
        k = int(np.argmax(smoothed))
        p = float(smoothed[k])
        box = tuple(int(v) for v in box)
        run = face.run
        if run is None or run.label != k:
            if run is not None:
                self._close_run(face_id, face, run)
            run = face.run = _Run(k, time, frame, box, time, start_p=p)
        run.last = time
        if face.typical is None or p > face.typical.confidence:
            face.typical = Moment(self.video, int(face_id), "typical", frame, time, CLASSES[k], p, box)
        if p > run.best:
            run.best, run.best_at = p, (frame, time, box)
        if run.held >= self.hold:
            self._settle(face_id, face, run)

    def _settle(self, face_id: int, face: _Face, run: _Run) -> None:
        """The current run has held: it may be a change from the last settled label, and a peak."""
        if face.settled != run.label:
            if face.settled >= 0:
                face.change_open = Moment(self.video, int(face_id), "change", run.start_frame, run.start,
                                          CLASSES[run.label], float(run.start_p), run.start_box,
                                          previous=CLASSES[face.settled], held=run.held)
                self._keep_change(face, face.change_open)
            face.settled = run.label
        elif face.change_open is not None and face.change_open.label == CLASSES[run.label]:
            self._grow_change(face, run.held)
        if run.best >= self.min_confidence:
            frame, time, box = run.best_at
            old = face.peaks.get(run.label)
            if old is None or run.best > old.confidence:
                face.peaks[run.label] = Moment(self.video, int(face_id), "peak", frame, time, CLASSES[run.label],
                                               float(run.best), box, held=run.held)
            elif old.frame == frame:
                face.peaks[run.label] = Moment(**{**old.__dict__, "held": run.held})

    def _grow_change(self, face: _Face, held: float) -> None:
        """The open change's new label is still holding: its ``held`` grows with it."""
        grown = Moment(**{**face.change_open.__dict__, "held": held})
        face.changes = [grown if c is face.change_open else c for c in face.changes]
        face.change_open = grown

    def _keep_change(self, face: _Face, moment: Moment) -> None:
        face.changes.append(moment)
        if len(face.changes) > MAX_CHANGES:  # drop the shortest-held, never the open one
            drop = min((c for c in face.changes if c is not moment), key=lambda c: c.held)
            face.changes.remove(drop)

    def _close_run(self, face_id: int, face: _Face, run: _Run) -> None:
        if run.held >= self.hold:
            self._settle(face_id, face, run)
        if face.change_open is not None and face.change_open.label == CLASSES[run.label]:
            face.change_open = None  # its run is over: its held time is final

    def close(self, face_id: int) -> None:
        """A face that is gone (its track closed): its last run settled, its moments kept, its state freed."""
        face = self.faces.pop(int(face_id), None)
        if face is None:
            return
        if face.run is not None:
            self._close_run(face_id, face, face.run)
        self.done += [*face.peaks.values(), *face.changes]
        if face.typical is not None:
            self.done_typical.append(face.typical)

    def moments(self) -> list[Moment]:
        """Every peak and change found, by face and time."""
        out = self.done + [m for f in self.faces.values() for m in (*f.peaks.values(), *f.changes)]
        return sorted(out, key=lambda m: (m.face_id, m.time, m.kind))

    def typical(self) -> list[Moment]:
        """Each face's most confident sample (kind "typical"): not a moment, a picture of the face."""
        out = self.done_typical + [f.typical for f in self.faces.values() if f.typical is not None]
        return sorted(out, key=lambda m: m.face_id)


def who(face_id: int, person_of: dict[int, str]) -> str:
    """Whose a face is, for grouping its moments and a report's sections: its person, or the face itself
    ("face #12") when it has none."""
    return person_of.get(face_id) or f"face #{face_id}"


def strongest(moments: list[Moment], person_of: dict[int, str], per_person: int = 12,
              typical: list[Moment] = ()) -> list[Moment]:
    """The moments a report shows: per person (faces merged by ``person_of``: face id -> person, "" for a
    face without one, kept as its own), the strongest peak of each emotion, then the changes held longest,
    at most ``per_person``; in time order. A person with no moment (always uncertain, say) is shown by
    their most confident sample among ``typical``."""
    by: dict[str, list[Moment]] = {}
    for m in moments:
        by.setdefault(who(m.face_id, person_of), []).append(m)
    for m in sorted(typical, key=lambda m: -m.confidence):
        key = who(m.face_id, person_of)
        if key not in by:
            by[key] = [m]
    chosen = []
    for ms in by.values():
        if ms[0].kind == "typical":
            chosen.append(ms[0])
            continue
        peaks: dict[str, Moment] = {}
        for m in ms:
            if m.kind == "peak" and (m.label not in peaks or m.confidence > peaks[m.label].confidence):
                peaks[m.label] = m
        ranked = sorted(peaks.values(), key=lambda m: -m.held)
        ranked += sorted((m for m in ms if m.kind == "change"), key=lambda m: -m.held)
        chosen += ranked[:per_person]
    return sorted(chosen, key=lambda m: (m.time, m.face_id))
