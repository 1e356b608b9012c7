"""Finding inputs: media files under the paths given, in a stable order, each named even when it cannot be read.

A file that cannot be read raises ``SourceError`` naming the file and the reason; callers record it and go on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..core.files import printable, special_kind

# OpenCV's FFmpeg backend prints its own errors ("moov atom not found", "overread 8") on stderr; we report
# each bad video in one line instead. Read when the backend starts: export OPENCV_FFMPEG_LOGLEVEL to see them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

#: Image files batchemo reads, everywhere (media folders and labelled datasets alike).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")






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
        (errors.append((found.path, found.reason))
         if found.kind == "failed" and found.reason.startswith("cannot read folder")
         else files.append(found.path))

    _walk_folder(Path(folder), add)
    return files, errors


def find_media(paths: Iterable[str | os.PathLike], videos: bool = False) -> list[Path]:
    """Image (and, if ``videos``, video) files under ``paths`` (see ``walk``, which also reports the rest)."""
    kinds = ("image", "video") if videos else ("image",)
    return [f.path for f in walk(paths) if f.kind in kinds]


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


def find_videos(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Video files under folders (recursively, sorted) plus files named directly, missing ones included.

    A named file is kept whatever it is, so that a missing or broken one (or a photo) is reported, not skipped.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += [f for f in find_media([p], videos=True) if is_video(f) and f not in out]
        elif p not in out:
            out.append(p)
    return out
