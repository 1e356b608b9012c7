"""Videos: decoded as a stream of sampled frames at their real timestamps, whatever the container claims.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .walk import SourceError, check_regular

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



_ALIASES: dict[str, str] = {}


def _opencv_name(path: Path) -> str:
    """A name OpenCV can open for ``path``. OpenCV takes UTF-8 names only: a file whose name is not valid
    UTF-8 is reached through a symbolic link with a plain name in a private temp folder (kept until exit)."""
    name = str(path)
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        pass
    if name not in _ALIASES:
        import atexit
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="batchemo-names-")
        atexit.register(shutil.rmtree, folder, True)
        alias = os.path.join(folder, "video" + path.suffix.encode("ascii", "replace").decode("ascii"))
        os.symlink(os.path.abspath(path), alias)
        _ALIASES[name] = alias
    return _ALIASES[name]


def _whole(value: float) -> int:
    return int(value) if math.isfinite(value) and 0 < value < 2**40 else 0


def open_video(path: str | os.PathLike):
    """(capture, VideoInfo) for a video file; SourceError naming the reason if it cannot be opened."""
    import cv2

    path = Path(path)
    if not os.path.lexists(path):
        raise SourceError(path, "no such file")
    if path.is_dir():
        raise SourceError(path, "is a folder, not a video file")
    check_regular(path)
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise SourceError(path, f"cannot read: {e.strerror or e}") from None
    cap = _open_capture(_opencv_name(path))
    if not cap.isOpened():
        cap.release()
        raise SourceError(
            path, "cannot open as a video: not a video, an unsupported codec, or a damaged file "
            "(an MP4 cut short loses the index stored at its end)",
        )
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    info = VideoInfo(
        path=str(path), width=_whole(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=_whole(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
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

    def __init__(self, path: str | os.PathLike, fps: float = 2.0, max_side: int = 1280, skip: int = 0):
        """``skip``: sampled frames to pass over without decoding them whole (a resumed analysis has done
        them); they count in ``frames_sampled`` and keep the sampling grid exactly as an unbroken read."""
        if not (fps >= 0 and math.isfinite(fps)):
            raise ValueError(f"sampling rate must be a number >= 0 (0: every frame), got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.max_side = max_side
        self.skip = int(skip)
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
            if period:
                origin = t if origin is None else origin
                next_due = origin + (math.floor((t - origin + _TOLERANCE) / period) + 1) * period
            if self.frames_sampled < self.skip:  # done before a resume: on the grid, not decoded whole
                self.frames_sampled += 1
                continue
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                self.stopped = f"frame {index} ({t:.2f} s) could not be decoded"
                break
            self.frames_sampled += 1
            yield self._frame(index, t, bgr)
        if self.frames_decoded == 0:
            raise SourceError(self.path,
                              self.stopped or "no frame could be decoded (damaged, truncated or unsupported codec)")
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
