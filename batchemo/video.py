"""Videos: frames sampled at their real timestamps, faces followed across frames, an emotion timeline.

Why it is built this way:

- Frames stream through a generator (``cv2.VideoCapture``): every frame is grabbed (cheap, no colour
  conversion) and only the sampled ones are retrieved. No frame outlives its small prediction batch, so
  memory stays flat however long the video; what the report needs is kept as small JPEGs (a bounded
  filmstrip and, per face, its most confident moment for each emotion).
- Times come from the container (``CAP_PROP_POS_MSEC``), not frame index / nominal fps, which drifts on
  variable-frame-rate phone videos and is useless when a header says 0 fps.
- A bad video never stops a batch: it gets status ``failed`` and a one-line reason; a truncated one keeps
  the timeline of its readable part (status ``partial``).
"""
from __future__ import annotations

import math
import os
import sys
import time as _clock
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .model import CLASSES
from .records import Box
from .sources import SourceError, is_video

# OpenCV's FFmpeg backend prints its own errors ("moov atom not found", "overread 8") on stderr; we report
# each bad video in one line instead. Read when the backend starts: export OPENCV_FFMPEG_LOGLEVEL to see them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

STATUS_OK, STATUS_NO_FACES, STATUS_PARTIAL, STATUS_FAILED = "ok", "no_faces", "partial", "failed"

PROB_COLUMNS = [f"p_{c}" for c in CLASSES]
SMOOTH_COLUMNS = [f"ps_{c}" for c in CLASSES]
#: The timeline's columns, in order: one row per face per sampled frame. ``p_*`` are the CNN's raw
#: probabilities, ``ps_*`` the smoothed ones (equal to the raw ones when smoothing is off).
TIMELINE_COLUMNS = [
    "video", "frame", "time", "face_id", "x", "y", "w", "h", "label", "confidence", *PROB_COLUMNS,
    "label_smoothed", "confidence_smoothed", *SMOOTH_COLUMNS,
]

#: Haar settings for video when none are given. Video frames are small and soft and a timeline needs the
#: face in most frames, so the scale step is finer than the seed's 1.3 for photos. Measured on the Hamilton
#: clip: a face in 45% of frames instead of 34%, for 1.4x the detection time. Finer still (1.1) finds more
#: but also false faces (on the astronaut's suit) that become tracks of their own.
VIDEO_HAAR_OPTIONS = {"scale_factor": 1.2, "min_neighbors": 5}

_TOLERANCE = 1e-3  # seconds: a frame this close before a sampling instant still counts as on time


# ---------------------------------------------------------------- decoding
@dataclass(frozen=True)
class VideoInfo:
    """What the container's header claims; 0 means unknown. Headers lie, so times come from the frames."""

    path: str
    width: int
    height: int
    fps: float
    frame_count: int

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 and self.frame_count > 0 else 0.0


@dataclass
class Frame:
    """One sampled frame: its number in decoding order, its presentation time and its (scaled) pixels."""

    index: int
    time: float  # seconds
    rgb: np.ndarray  # uint8 RGB, at most ``max_side`` long
    scale: float  # rgb size / original size


def _backend() -> int:
    import cv2

    try:
        return cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
    except AttributeError:  # very old OpenCV
        return cv2.CAP_ANY


def _open_capture(path: str):
    """The capture object (a seam: tests wrap it to fake a header that says 0 fps).

    OpenCV logs a warning of its own for a file it cannot open; we report it in one line instead.
    """
    import cv2

    try:
        logging = cv2.utils.logging
        level = logging.getLogLevel()
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    except AttributeError:
        return cv2.VideoCapture(path, _backend())
    try:
        return cv2.VideoCapture(path, _backend())
    finally:
        logging.setLogLevel(level)


def _whole(value: float) -> int:
    return int(value) if math.isfinite(value) and 0 < value < 2**40 else 0


def open_video(path: str | os.PathLike):
    """(capture, VideoInfo) for a video file; SourceError naming the reason if it cannot be opened."""
    import cv2

    path = Path(path)
    if not path.exists():
        raise SourceError(path, "no such file")
    if path.is_dir():
        raise SourceError(path, "is a folder, not a video file")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as e:
        raise SourceError(path, f"cannot read: {e.strerror or e}") from None
    if size == 0:
        raise SourceError(path, "empty file (0 bytes)")
    cap = _open_capture(str(path))
    if not cap.isOpened():
        cap.release()
        raise SourceError(
            path, "cannot open as a video: not a video, an unsupported codec, or a damaged file "
            "(an MP4 cut short loses the index stored at its end)",
        )
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    info = VideoInfo(
        path=str(path), width=_whole(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), height=_whole(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        fps=fps if math.isfinite(fps) and fps > 0 else 0.0, frame_count=_whole(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
    )
    return cap, info


class VideoStream:
    """The sampled frames of one video, decoded as a stream: ``for frame in VideoStream(path, fps=2)``.

    ``fps`` is the sampling rate (0: every frame). Sampling instants lie on a fixed grid from the first
    frame's time and each takes the first frame at or after it, so a 29.97 fps video sampled at 2 fps gives
    frames at 0, 0.5005, 1.001 s ... without drift. After iterating: ``frames_decoded``, ``frames_sampled``,
    ``first_time``/``last_time``, ``stopped`` (why decoding ended early, "" if it reached the end) and
    ``warnings``. Opening raises SourceError; so does iterating a video of which no frame decodes.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 2.0, max_side: int = 1280):
        if not (fps >= 0 and math.isfinite(fps)):
            raise ValueError(f"sampling rate must be a number >= 0 (0: every frame), got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.max_side = max_side
        self._cap, self.info = open_video(path)
        self.warnings: list[str] = []
        if self.info.fps <= 0:
            self.warnings.append("the header reports 0 fps: times are taken from the frames' own timestamps")
        self.frames_decoded = 0
        self.frames_sampled = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.stopped = ""
        self._fallback_warned = False

    def __enter__(self) -> "VideoStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._cap.release()

    def __iter__(self) -> Iterator[Frame]:
        return self._frames()

    @property
    def truncated(self) -> bool:
        return bool(self.stopped)

    def _timestamp(self, index: int, prev: float | None) -> float | None:
        """The frame's presentation time; None when it has none and the header gives no rate either."""
        import cv2

        ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        t = ms / 1000.0 if ms is not None and math.isfinite(ms) and ms >= 0 else None
        if prev is None:
            return t if t is not None else 0.0
        if t is not None and t > prev:
            return t
        if self.info.fps <= 0:
            return None
        if not self._fallback_warned:
            self._fallback_warned = True
            self.warnings.append(
                f"frames without usable timestamps from frame {index}: their times follow the nominal "
                f"{self.info.fps:g} fps"
            )
        return prev + 1.0 / self.info.fps

    def _frames(self) -> Iterator[Frame]:
        import cv2

        cap, period = self._cap, (1.0 / self.fps if self.fps > 0 else 0.0)
        origin = next_due = None
        prev = None
        index = -1
        while True:
            try:
                ok = cap.grab()
            except cv2.error as e:
                self.stopped = f"decoding failed after frame {index} ({str(e).strip().splitlines()[-1][:120]})"
                break
            if not ok:
                break
            index += 1
            t = self._timestamp(index, prev)
            if t is None:
                if self.frames_sampled <= 1:
                    raise SourceError(self.path, "the header reports 0 fps and the frames carry no timestamps: "
                                                 "cannot place frames in time")
                self.stopped = f"frame {index} has no timestamp and the header reports 0 fps"
                break
            self.frames_decoded = index + 1
            prev = self.last_time = t
            if self.first_time is None:
                self.first_time = t
            if next_due is not None and t < next_due - _TOLERANCE:
                continue
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                self.stopped = f"frame {index} ({t:.2f} s) could not be decoded"
                break
            if period:
                origin = t if origin is None else origin
                next_due = origin + (math.floor((t - origin + _TOLERANCE) / period) + 1) * period
            self.frames_sampled += 1
            yield self._frame(index, t, bgr)
        if self.frames_decoded == 0:
            raise SourceError(self.path, self.stopped or "no frame could be decoded (damaged, truncated or unsupported codec)")
        expected = self.info.frame_count
        if not self.stopped and expected and self.frames_decoded < expected - max(3, 0.03 * expected):
            self.stopped = (
                f"decoding stopped at frame {self.frames_decoded} ({self.last_time:.1f} s) of the {expected} "
                f"frames{f' ({self.info.duration:.1f} s)' if self.info.duration else ''} the header announces"
            )
        if self.stopped:
            self.warnings.append(f"truncated or damaged: {self.stopped}; the timeline up to there is kept")

    def _frame(self, index: int, t: float, bgr: np.ndarray) -> Frame:
        import cv2

        h, w = bgr.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        return Frame(index, t, rgb, scale)


def sample_frames(path: str | os.PathLike, fps: float = 2.0, max_side: int = 1280) -> Iterator[Frame]:
    """Sampled frames of a video (see VideoStream); the plain generator for when no bookkeeping is needed."""
    with VideoStream(path, fps, max_side) as stream:
        yield from stream


# ---------------------------------------------------------------- tracking
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


# ---------------------------------------------------------------- smoothing
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


# ---------------------------------------------------------------- what the report keeps
@dataclass
class Keyframe:
    """A moment of one face that the report shows and LIME may explain.

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
    crop: np.ndarray  # the uint8 48x48 face the CNN saw
    face_jpg: bytes
    frame_jpg: bytes  # the frame, small, every face boxed
    heatmap_img: bytes | None = None
    lime_img: bytes | None = None
    lime_score: float | None = None
    kind: str = "peak"


@dataclass
class Still:
    """One frame of a video's filmstrip."""

    frame: int
    time: float
    faces: int
    jpg: bytes


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
    """A sampled frame whose faces wait for the batched CNN call; only small images are kept."""

    frame: int
    time: float
    sample: int
    thumb: np.ndarray  # RGB, at most thumb_side long
    thumb_scale: float  # thumb px per detection px
    boxes: list  # detection pixels
    scale: float  # detection px per original px
    ids: list
    crops: list
    colour: list


# ---------------------------------------------------------------- analysis
def _resolve_model(model):
    from .model import EmotionModel

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
    keys = ("scale_factor", "min_neighbors", "min_size", "upsample")
    return {k: getattr(det, k) for k in keys if hasattr(det, k)}


def _empty_timeline():
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in TIMELINE_COLUMNS})


def _dtype(col: str) -> str:
    if col in ("frame", "face_id", "x", "y", "w", "h"):
        return "int64"
    if col in ("video", "label", "label_smoothed"):
        return "object"
    return "float64"


def analyze_video(
    path: str | os.PathLike,
    model=None,
    fps: float = 2.0,
    detector="haar",
    smooth: float | None = None,
    explain_keyframes: int = 0,
    *,
    detector_options: dict | None = None,
    lime_samples: int = 1000,
    seed: int = 0,
    max_side: int = 1280,
    thumb_side: int = 400,
    filmstrip: int = 12,
    max_gap: float | None = None,
    batch_faces: int = 64,
    min_face_samples: int = 3,
    progress: bool = False,
):
    """The emotion timeline of one video: a pandas DataFrame, one row per face per sampled frame.

    ``model``: an EmotionModel, a .keras path, or None for the shipped one (loaded once per process).
    ``fps``: sampling rate (0: every frame). ``detector``: a name or a detector object (haar's options
    default to VIDEO_HAAR_OPTIONS). ``smooth``: time constant in seconds of the per-face exponential
    smoothing (None: off). ``explain_keyframes``: LIME heatmaps for that many keyframes per face seen in at
    least ``min_face_samples`` sampled frames (shorter tracks are mostly false detections; the report lists
    them without a chart).

    Columns: TIMELINE_COLUMNS. ``df.attrs``: status (ok / no_faces / partial / failed), reason, warnings,
    duration, frames_decoded, frames_sampled, sample_period, faces, seconds, the settings, and for the report
    ``keyframes`` (list of Keyframe) and ``filmstrip`` (list of Still). A bad file never raises: status
    ``failed`` and a reason instead. Model and detector errors do raise.
    """
    if explain_keyframes < 0:
        raise ValueError(f"explain_keyframes must be >= 0, got {explain_keyframes}")
    if smooth is not None and not (smooth >= 0 and math.isfinite(smooth)):
        raise ValueError(f"smoothing time constant must be >= 0 seconds, got {smooth}")
    em = _resolve_model(model)
    det = _resolve_detector(detector, detector_options)
    det_name = getattr(det, "name", str(detector))
    t_start = _clock.time()
    attrs = {
        "video": str(path), "name": os.path.basename(str(path)), "status": STATUS_FAILED, "reason": "",
        "warnings": [], "width": 0, "height": 0, "fps_nominal": 0.0, "frame_count": 0, "duration": 0.0,
        "frames_decoded": 0, "frames_sampled": 0, "sample_period": 0.0, "faces": 0, "seconds": 0.0,
        "fps": fps, "smooth": smooth or None, "detector": det_name,
        "detector_options": dict(detector_options) if detector_options is not None else _options_of(det),
        "explain_keyframes": explain_keyframes,
        "lime_samples": lime_samples, "min_face_samples": min_face_samples, "model": dict(em.card.__dict__),
        "keyframes": [], "filmstrip": [],
    }
    try:
        stream = VideoStream(path, fps, max_side)
    except SourceError as e:
        df = _empty_timeline()
        df.attrs.update(attrs, reason=e.reason, seconds=_clock.time() - t_start)
        return df
    info = stream.info
    attrs.update(width=info.width, height=info.height, fps_nominal=info.fps, frame_count=info.frame_count)
    if max_gap is None:
        max_gap = max(2.0, 3.0 / fps) if fps > 0 else 2.0
    tracker = FaceTracker(max_gap=max_gap)
    state = _State(em, thumb_side, filmstrip, str(path))
    from tqdm.auto import tqdm

    bar = tqdm(total=info.frame_count or None, unit="frame", desc=attrs["name"][:30], disable=not progress,
               file=sys.stderr, leave=False)
    failure = ""
    try:
        with stream:
            from .detect import crop_face, to_gray

            for frame in stream:
                bar.update(stream.frames_decoded - bar.n)
                boxes = det.detect(frame.rgb)
                ids = tracker.update([b.scaled(1 / frame.scale) for b in boxes], frame.time)
                gray = to_gray(frame.rgb) if boxes else None
                state.queue(frame, stream.frames_sampled - 1, boxes, ids,
                            [crop_face(gray, b) for b in boxes] if boxes else [])
                if state.pending_faces >= batch_faces or len(state.pending) >= 16:
                    state.flush()
            state.flush()
    except SourceError as e:
        failure = e.reason
    finally:
        bar.close()
    df = smooth_timeline(state.table(), smooth)[TIMELINE_COLUMNS] if state.rows else _empty_timeline()
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
    frame_period = 1.0 / info.fps if info.fps else (
        sampled_span / max(1, stream.frames_decoded - 1) if stream.frames_decoded > 1 else 0.0)
    span = state.last_sample_time - state.first_sample_time if state.samples > 1 else 0.0
    sample_period = span / (state.samples - 1) if state.samples > 1 else (1.0 / fps if fps else frame_period)
    keyframes = state.all_keyframes()
    if explain_keyframes and keyframes and status != STATUS_FAILED:
        counts = df["face_id"].value_counts()
        lasting = set(counts[counts >= min_face_samples].index)
        explain_keyframe_faces(em, [k for k in keyframes if k.face_id in lasting], df, explain_keyframes,
                               lime_samples, seed)
    attrs.update(
        status=status, reason=reason, warnings=list(stream.warnings),
        duration=(sampled_span + frame_period) if stream.frames_decoded else 0.0,
        frames_decoded=stream.frames_decoded, frames_sampled=stream.frames_sampled,
        sample_period=sample_period, faces=n_faces, keyframes=keyframes,
        filmstrip=[s for _, s in state.film.stills], seconds=_clock.time() - t_start,
    )
    df.attrs.update(attrs)
    return df


class _State:
    """The running analysis of one video: pending frames, rows, keyframes, filmstrip."""

    def __init__(self, model, thumb_side: int, film_size: int, video: str, moments_per_face: int = 4):
        self.model, self.thumb_side, self.video = model, thumb_side, video
        self.moments_per_face = moments_per_face
        self.film = _Filmstrip(film_size)
        self.pending: list[_Pending] = []
        self.pending_faces = 0
        self.rows: list[tuple] = []
        self.keyframes: dict[tuple[int, str], Keyframe] = {}  # (face id, label) -> its peak
        self.moments: dict[int, _Filmstrip] = {}  # face id -> evenly spaced moments
        self.hits: dict[int, int] = {}
        self.samples = 0
        self.first_sample_time = self.last_sample_time = 0.0
        order = list(model.classes)
        self._reorder = None if tuple(order) == CLASSES else [order.index(c) for c in CLASSES]

    def queue(self, frame: Frame, sample: int, boxes: list[Box], ids: list[int], crops: list[np.ndarray]) -> None:
        import cv2

        from .engine import square

        if self.samples == 0:
            self.first_sample_time = frame.time
        self.samples += 1
        self.last_sample_time = frame.time
        h, w = frame.rgb.shape[:2]
        f = min(1.0, self.thumb_side / max(h, w))
        thumb = cv2.resize(frame.rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA) \
            if f < 1 else frame.rgb.copy()
        colour = [square(frame.rgb[max(b.y, 0): b.y + b.h, max(b.x, 0): b.x + b.w], 112) for b in boxes]
        self.pending.append(_Pending(frame.index, frame.time, sample, thumb, f, boxes, frame.scale, ids, crops, colour))
        self.pending_faces += len(boxes)

    def flush(self) -> None:
        from .engine import annotate, encode

        if not self.pending:
            return
        crops = [c for p in self.pending for c in p.crops]
        probs = self.model.predict(np.stack(crops)) if crops else np.zeros((0, len(CLASSES)), np.float32)
        if self._reorder is not None:
            probs = probs[:, self._reorder]
        k = 0
        for p in self.pending:
            pr = probs[k: k + len(p.crops)]
            k += len(p.crops)
            labels = [CLASSES[int(i)] for i in pr.argmax(1)] if len(pr) else []
            cache: list[bytes] = []

            def frame_jpg(p=p, pr=pr, labels=labels, cache=cache) -> bytes:
                if not cache:
                    marks = [(b.scaled(p.thumb_scale), lb, float(q.max()), fid)
                             for b, lb, q, fid in zip(p.boxes, labels, pr, p.ids)]
                    cache.append(encode(annotate(p.thumb, marks, self.thumb_side), ".jpg", 80))
                return cache[0]

            for box, fid, q, label, crop, colour in zip(p.boxes, p.ids, pr, labels, p.crops, p.colour):
                ob = box.scaled(1 / p.scale)
                conf = float(q.max())
                self.rows.append((self.video, p.frame, p.time, fid, ob.x, ob.y, ob.w, ob.h, label, conf,
                                  *(float(v) for v in q)))
                made: list[Keyframe] = []

                def keyframe(kind: str) -> Keyframe:
                    if not made:  # the images are encoded once, whatever the face is kept for
                        made.append(Keyframe(
                            face_id=fid, frame=p.frame, time=p.time, label=label, confidence=conf,
                            probabilities={c: float(v) for c, v in zip(CLASSES, q)}, box=ob, crop=crop,
                            face_jpg=encode(colour, ".jpg", 90), frame_jpg=frame_jpg()))
                    return replace(made[0], kind=kind)

                best = self.keyframes.get((fid, label))
                if best is None or conf > best.confidence:
                    self.keyframes[(fid, label)] = keyframe("peak")
                n = self.hits.get(fid, 0)
                self.hits[fid] = n + 1
                strip = self.moments.setdefault(fid, _Filmstrip(self.moments_per_face))
                if strip.wants(n):
                    strip.add(n, keyframe("moment"))
            if self.film.wants(p.sample):
                self.film.add(p.sample, Still(p.frame, p.time, len(p.boxes), frame_jpg()))
        self.pending, self.pending_faces = [], 0

    def all_keyframes(self) -> list[Keyframe]:
        """Peaks, then the evenly spaced moments that are not already a peak, by face and time."""
        peaks = list(self.keyframes.values())
        seen = {(k.face_id, k.frame) for k in peaks}
        moments = [k for strip in self.moments.values() for _, k in strip.stills if (k.face_id, k.frame) not in seen]
        return sorted(peaks + moments, key=lambda k: (k.face_id, k.time, k.kind))

    def table(self):
        import pandas as pd

        if not self.rows:
            return _empty_timeline()
        return pd.DataFrame(self.rows, columns=TIMELINE_COLUMNS[: 10 + len(CLASSES)])


def explain_keyframe_faces(model, keyframes: Sequence[Keyframe], df, per_face: int, lime_samples: int = 1000,
                           seed: int = 0) -> list[Keyframe]:
    """LIME heatmaps for ``per_face`` keyframes of each face, filled into those Keyframes (returned).

    A face's peaks come first, ranked by how long it showed their emotion, so the first heatmap explains
    the face's main emotion at its most confident moment; then its evenly spaced moments. All chosen faces
    go to LIME in one parallel call.
    """
    from .engine import explanation_images
    from .explain import LimeSettings, explain_faces

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
    exps = explain_faces(model, [k.crop for k in chosen], [[k.label] for k in chosen],
                         LimeSettings(num_samples=lime_samples, seed=seed))
    for k, e in zip(chosen, exps):
        exp = e.get(k.label) or next(iter(e.values()))
        k.heatmap_img, k.lime_img = explanation_images(k.crop, exp)
        k.lime_score = exp.score
    return chosen


# ---------------------------------------------------------------- many videos
def find_videos(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Video files under folders (recursively, sorted) plus files named directly, missing ones included.

    A named file is kept whatever it is, so that a missing or broken one is reported, not skipped.
    """
    from .sources import find_media

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += [f for f in find_media([p], videos=True) if is_video(f) and f not in out]
        elif p not in out:
            out.append(p)
    return out


def analyze_videos(
    paths: Iterable[str | os.PathLike],
    model=None,
    fps: float = 2.0,
    detector="haar",
    smooth: float | None = None,
    explain_keyframes: int = 0,
    log: Callable[[str], None] | None = None,
    on_video: Callable[[object], None] | None = None,
    **options,
) -> list:
    """analyze_video for each path, with the model and detector loaded once; one DataFrame per video.

    A video that fails is recorded (status ``failed``, ``reason``) and the others go on; ``log`` receives
    one line per video as it finishes (``on_video`` its DataFrame). Model and detector errors raise: no
    video could use them.
    """
    em = _resolve_model(model)
    det_options = options.pop("detector_options", None)
    det = _resolve_detector(detector, det_options)
    results = []
    for p in paths:
        df = analyze_video(p, em, fps, det, smooth, explain_keyframes, detector_options=det_options, **options)
        results.append(df)
        if log:
            log(describe(df))
        if on_video:
            on_video(df)
    return results


def describe(df) -> str:
    """One line about one video's analysis, for the terminal."""
    a = df.attrs
    name = a.get("video", "?")
    if a.get("status") == STATUS_FAILED:
        return f"{name}: failed: {a.get('reason')}"
    text = (f"{name}: {a['duration']:.1f} s, {a['frames_sampled']} frames sampled, "
            f"{a['faces']} face{'s' if a['faces'] != 1 else ''} tracked, {len(df)} rows, in {a['seconds']:.1f} s")
    if a.get("status") == STATUS_NO_FACES:
        text += " (no face found)"
    for w in a.get("warnings", []):
        text += f"\n  warning: {w}"
    return text


def timeline_table(results: Sequence):
    """All videos' timelines as one DataFrame for CSV/JSON: TIMELINE_COLUMNS, times rounded to the
    millisecond and probabilities to 1e-4 (the CSV stays readable; the CNN is not more precise than that).

    Videos without faces or that failed add no row; the header is always there.
    """
    import pandas as pd

    parts = [df[TIMELINE_COLUMNS] for df in results if len(df)]
    if not parts:
        return _empty_timeline()
    out = pd.concat(parts, ignore_index=True)
    out.attrs = {}
    out["time"] = out["time"].round(3)
    for c in PROB_COLUMNS + SMOOTH_COLUMNS + ["confidence", "confidence_smoothed"]:
        out[c] = out[c].round(4)
    return out


# ---------------------------------------------------------------- for `batchemo run`
@dataclass
class VideoLink:
    """One video of a run: what happened to it and where its part of the video report is."""

    video: str
    name: str
    status: str
    reason: str
    duration: float
    faces: int
    frames_sampled: int
    anchor: str  # id of its section in the video report

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class VideoRun:
    """What ``run_videos`` wrote: one timeline CSV, one HTML report (None if not asked), one link per video."""

    csv: Path
    report: Path | None
    videos: list[VideoLink] = field(default_factory=list)
    seconds: float = 0.0

    def href(self, link: VideoLink, relative_to: str | os.PathLike) -> str:
        """Link to a video's section of the report, relative to the folder of the page that links to it."""
        if self.report is None:
            return ""
        rel = os.path.relpath(self.report, Path(relative_to))
        return Path(rel).as_posix() + "#" + link.anchor

    @property
    def failed(self) -> int:
        return sum(v.status == STATUS_FAILED for v in self.videos)


def run_videos(
    video_paths: Sequence[str | os.PathLike],
    prefix: str | os.PathLike,
    model=None,
    detector="haar",
    detector_options: dict | None = None,
    fps: float = 2.0,
    smooth: float | None = None,
    explain_keyframes: int = 1,
    lime_samples: int = 1000,
    seed: int = 0,
    report: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> VideoRun:
    """Timelines of the videos met by ``batchemo run``: writes PREFIX.timeline.csv and PREFIX.videos.html.

    Returns a VideoRun whose ``videos`` (status, reason, faces, duration) and ``href()`` let the run report
    link each video's section. Never raises for a bad video; raises for a bad model or detector.
    """
    from .outputs import write_table

    t0 = _clock.time()
    prefix = Path(prefix)
    results = analyze_videos(
        video_paths, model=model, fps=fps, detector=detector, smooth=smooth,
        explain_keyframes=explain_keyframes if report else 0, log=log, detector_options=detector_options,
        lime_samples=lime_samples, seed=seed, progress=progress,
    )
    csv = write_table(timeline_table(results), prefix.parent / (prefix.name + ".timeline.csv"))
    html = None
    if report:
        from .video_report import write_video_report

        html = write_video_report(results, prefix.parent / (prefix.name + ".videos.html"))
    links = [
        VideoLink(video=a["video"], name=a["name"], status=a["status"], reason=a["reason"],
                  duration=float(a["duration"]), faces=int(a["faces"]), frames_sampled=int(a["frames_sampled"]),
                  anchor=f"video-{i}")
        for i, a in enumerate((df.attrs for df in results), 1)
    ]
    return VideoRun(csv=csv, report=html, videos=links, seconds=_clock.time() - t0)
