"""Every input: finding media files, decoding images robustly (EXIF rotation, alpha, 16-bit, huge files),
and decoding videos as a stream of sampled frames at their real timestamps.

A file that cannot be read raises ``SourceError`` naming the file and the reason; callers record it and go on.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

# OpenCV's FFmpeg backend prints its own errors ("moov atom not found", "overread 8") on stderr; we report
# each bad video in one line instead. Read when the backend starts: export OPENCV_FFMPEG_LOGLEVEL to see them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

_TOLERANCE = 1e-3  # seconds: a frame this close before a sampling instant still counts as on time

#: Image files batchemo reads, everywhere (media folders and labelled datasets alike).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")

#: Longest side an image is decoded at. Faces stay large enough for the detector and the 48x48 CNN,
#: and a 100-megapixel photo costs ~12 MB instead of ~300 MB.
MAX_SIDE = 2048

#: Largest image decoded in full. JPEGs decode reduced (1/2 .. 1/8) whatever their size; other formats
#: (PNG, TIFF, ...) must be decoded whole first, and a 13,300 x 13,300 PNG (2.3 MB on disk) took 3.8 GB.
MAX_PIXELS = 60_000_000


def special_kind(path: str | os.PathLike) -> str:
    """What ``path`` is when it is not a regular file or folder ("a named pipe (FIFO)", "a character device
    (/dev/urandom)"), found by ``stat`` without opening it; "" for a file, a folder or a missing path."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return ""
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    what = next((name for test, name in kinds if test(mode)), "")
    if what and os.path.islink(path):
        what += f" (a link to {printable(os.path.realpath(path))})"
    return what


def printable(text: str) -> str:
    """``text`` safe for one line of a log, a CSV cell or an HTML page: a byte of a file name that is not
    UTF-8 (a lone surrogate, Python's ``surrogateescape``) becomes ``\\xff``, and a control character (a
    newline in a file name) its escape, so a name can neither break the encoding nor split a line."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or (not ch.isprintable() and ch != " "):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


class SourceError(Exception):
    """A media file that cannot be used; ``str()`` is the reason, ``path`` the file."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(reason)
        self.path = str(path)
        self.reason = reason


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Found:
    """One file met while walking the inputs, and what batchemo will do with it.

    ``kind``: "image" or "video" (to be read), "skipped" (not a kind of file batchemo reads) or "failed"
    (cannot be read at all, e.g. a broken symbolic link); ``reason`` says why for the last two.
    ``root`` is the folder it was found under (None for a file named directly).
    """

    path: Path
    root: Path | None
    kind: str
    reason: str = ""


def _classify_file(f: Path, root: Path | None) -> Found:
    if f.is_symlink() and not f.exists():
        return Found(f, root, "failed", f"broken symbolic link (points to {printable(os.readlink(f))})")
    if is_image(f):
        return Found(f, root, "image")
    if is_video(f):
        return Found(f, root, "video")
    what = f.suffix.lower() or "no extension"
    return Found(f, root, "skipped", f"not an image or video batchemo reads ({printable(what)}; it reads "
                                     f"{' '.join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)})")


def walk_error(e: OSError) -> str:
    """Why a folder could not be listed, in words (a path over PATH_MAX says so)."""
    import errno

    if e.errno == errno.ENAMETOOLONG:
        return "cannot read folder: its path is longer than the system allows (PATH_MAX)"
    if e.errno == errno.ELOOP:
        return "cannot read folder: too many levels of symbolic links"
    return f"cannot read folder: {e.strerror or e}"


def _listing(folder: Path) -> tuple[list[Path], list[Path]]:
    """(sub-folders, files) of ``folder``, hidden names left out, each sorted; OSError if it cannot be read.

    Links to folders count as folders (followed); anything else that is not a folder is a file here.
    """
    dirs, files = [], []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows links
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(folder / entry.name)
    key = lambda p: p.name.lower()  # noqa: E731
    return sorted(dirs, key=key), sorted(files, key=key)


def _walk_folder(top: Path, add) -> None:
    """Every file under folder ``top``, depth first (a folder's files, then its sub-folders, in name order),
    with an explicit stack: 10,000 nested folders cost no recursion. A folder that cannot be listed (no
    permission, a path over PATH_MAX) is passed to ``add`` as a "failed" Found with its reason."""
    visited: set[tuple[int, int]] = set()
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)  # (device, inode), not realpath: one call however deep the folder lies
            if (st.st_dev, st.st_ino) in visited:  # a link back to a folder already walked: a loop, or a duplicate
                continue
            visited.add((st.st_dev, st.st_ino))
            dirs, files = _listing(folder)
        except OSError as e:
            add(Found(folder, top, "failed", walk_error(e)))
            continue
        for f in files:
            add(_classify_file(f, top))
        stack.extend(reversed(dirs))


def walk(paths: Iterable[str | os.PathLike]) -> list[Found]:
    """Every non-hidden file under ``paths``, recursively, in a stable order, each with what to do with it.

    Nothing is dropped silently: unsupported files come back "skipped", broken links and folders that
    cannot be read "failed", each with a reason, so every input gets a row. Symbolically linked folders are
    followed, each real folder once (no loops). A file named directly is "image" unless it is a known
    video: a mislabelled, special (a FIFO) or broken file is then reported by the decoder. A named path
    that does not exist raises FileNotFoundError.
    """
    out: list[Found] = []
    seen: set[str] = set()

    def add(found: Found) -> None:
        key = os.path.abspath(found.path)
        if key not in seen:
            seen.add(key)
            out.append(found)

    for p in map(Path, paths):
        if not os.path.lexists(p):
            raise FileNotFoundError(f"{printable(str(p))}: no such file or folder")
        if p.is_symlink() and not p.exists():
            add(Found(p, None, "failed", f"broken symbolic link (points to {printable(os.readlink(p))})"))
        elif not p.is_dir():
            add(Found(p, None, "video" if is_video(p) else "image"))
        else:
            _walk_folder(p, add)
    return out


def iter_files(folder: str | os.PathLike) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every non-hidden file under ``folder`` (links followed, no recursion), and the sub-folders that could
    not be read with the reason: for datasets and --known-faces, which take their own kinds of file."""
    files, errors = [], []

    def add(found: Found) -> None:
        (errors.append((found.path, found.reason)) if found.kind == "failed" and found.reason.startswith("cannot read folder")
         else files.append(found.path))

    _walk_folder(Path(folder), add)
    return files, errors


def find_media(paths: Iterable[str | os.PathLike], videos: bool = False) -> list[Path]:
    """Image (and, if ``videos``, video) files under ``paths`` (see ``walk``, which also reports the rest)."""
    kinds = ("image", "video") if videos else ("image",)
    return [f.path for f in walk(paths) if f.kind in kinds]


def read_image(path: str | os.PathLike, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, float]:
    """Decode an image as upright RGB uint8, at most ``max_side`` pixels long.

    Returns (rgb, scale) where scale = decoded size / original size, so boxes can be mapped back to the
    original pixels. EXIF orientation is applied, transparency is composited on white, 16-bit and
    grayscale images are converted; JPEGs are decoded directly at reduced size (``draft``).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    check_regular(path)
    try:
        with Image.open(path) as im:
            orig_w, orig_h = im.size
            if orig_w == 0 or orig_h == 0:
                raise SourceError(path, "empty image (0 pixels)")
            if im.format == "JPEG":
                f = min(1.0, max_side / max(orig_w, orig_h), (max_pixels / (orig_w * orig_h)) ** 0.5)
                if f < 1.0:  # decode at 1/2, 1/4 or 1/8 scale: memory stays small
                    im.draft("RGB", (max(1, int(orig_w * f)), max(1, int(orig_h * f))))
            elif orig_w * orig_h > max_pixels:
                raise SourceError(path, f"image too large to decode: {orig_w}x{orig_h} pixels, over the limit of "
                                        f"{max_pixels:,} (--max-pixels) for {im.format or 'this format'}")
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = _to_rgb(im)
    except SourceError:
        raise
    except UnidentifiedImageError:
        raise SourceError(path, "not an image, or an unsupported format") from None
    except Image.DecompressionBombError as e:
        raise SourceError(path, f"image too large to decode safely ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower():
            msg = "truncated file (" + msg + ")"
        raise SourceError(path, f"cannot decode: {msg}") from None
    h, w = rgb.shape[:2]
    if max(h, w) > max_side:
        import cv2

        f = max_side / max(h, w)
        rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    # EXIF rotation may swap sides: compare like with like.
    upright_long = max(orig_w, orig_h)
    return np.ascontiguousarray(rgb), max(rgb.shape[:2]) / upright_long


def _to_rgb(im) -> np.ndarray:
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        g = np.clip(a / hi * 255.0, 0, 255).astype(np.uint8)
        return np.stack([g] * 3, axis=-1)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        g = np.clip((a - a.min()) / max(np.ptp(a), 1e-9) * 255, 0, 255).astype(np.uint8)
        return np.stack([g] * 3, axis=-1)
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return np.asarray(im.convert("RGB"))


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


def check_regular(path: Path) -> None:
    """SourceError unless ``path`` is a regular, non-empty file, found by ``stat`` before anything opens it:
    opening a named pipe blocks forever, and a device (a link to /dev/urandom) never ends."""
    try:
        st = os.stat(path)
    except OSError as e:
        if os.path.islink(path) and not os.path.exists(path):
            raise SourceError(path, f"broken symbolic link (points to {printable(os.readlink(path))})") from None
        raise SourceError(path, f"cannot read: {e.strerror or e}") from None
    special = special_kind(path)
    if special:
        raise SourceError(path, f"{special}, not a regular file: not read")
    if os.path.isdir(path):
        raise SourceError(path, "is a folder, not a file")
    if st.st_size == 0:
        raise SourceError(path, "empty file (0 bytes)")


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
