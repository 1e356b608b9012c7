"""Files that leave the process: written to a temp file beside them and renamed into place, so a crash or a
full disk mid-write leaves the previous file intact; and the temp files a killed run left behind.

Low on purpose: workers, caches and the model loader write files too, and none of them should import
the output edge (tables, rows, the report) to do it.
"""
from __future__ import annotations

import contextlib
import glob
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

#: Temp files are named ``.tmp-<pid>.<random>-<name tail>``: the pid says whose they are, so a run removes
#: only those whose writer is gone (a concurrent run's live temp file is never touched), and the tail keeps
#: the output's suffixes (some writers pick the format from them) within the file-name limit.
TEMP_PREFIX = ".tmp-"
_TAIL = 120  # characters of the output's name kept in its temp name (NAME_MAX is 255 bytes)


def _temp_tail(name: str) -> str:
    return name[-_TAIL:]


def make_temp(path: str | os.PathLike, tag: str = "") -> Path:
    """An empty temp file beside ``path`` (its folder created if missing), named with this process's pid."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with writing(path):
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}.{tag}", suffix=f"-{_temp_tail(path.name)}",
                                   dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise an OSError met while writing ``path`` as one line naming it ("out/faces.csv: cannot write:
    No space left on device"), its errno kept: a full disk must say which output it stopped."""
    try:
        yield
    except OSError as e:
        if str(path) in str(e):
            raise
        new = OSError(f"{printable(str(path))}: cannot write: {e.strerror or e}")
        new.errno = e.errno
        raise new from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path``, on error it is removed.

    For writers that insist on a file name (Keras, matplotlib, pandas). The folder is created if missing,
    and the temp name ends with the file name, since some writers choose the format from its suffixes.
    An OSError (a full disk) comes out naming ``path``.
    """
    path = Path(path)
    tmp_path = make_temp(path)
    try:
        with writing(path):
            yield tmp_path
            os.chmod(tmp_path, 0o644)
            os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_writable(path: str | os.PathLike) -> Path:
    """Raise OSError with a one-line reason if ``path`` could not be written; checked before any work.

    The folder is created (as the write would) and a temp file is made and removed in it, so what only
    trying reveals (/proc, a read-only mount, a full name too long) fails in the first second, not after an
    hour of analysis. A folder, a device or a pipe at ``path`` is refused: replacing it is never meant.
    """
    path = Path(path)
    shown = printable(str(path))
    if len(os.fsencode(path.name)) > 255:  # NAME_MAX on every common file system (checked exactly below)
        raise OSError(f"{shown}: cannot write there: the file name is longer than 255 bytes")
    if path.is_dir():
        raise OSError(f"{shown}: is a folder, expected a file name")
    if os.path.exists(path) and not path.is_file():
        raise OSError(f"{shown}: {special_kind(path) or 'not a regular file'}, not a file an output may replace")
    folder = path.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise OSError(f"{shown}: cannot write there: {printable(str(folder))} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        limit = os.pathconf(path.parent, "PC_NAME_MAX")
        if len(os.fsencode(path.name)) > limit:
            raise OSError(f"{shown}: cannot write there: the file name is longer than {limit} bytes")
        fd, probe = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}.probe", suffix=f"-{_temp_tail(path.name)}",
                                     dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        if e.strerror is None:
            raise
        raise OSError(f"{shown}: cannot write there: {e.strerror}") from None
    if path.exists() and not os.access(path, os.W_OK) and not os.access(path.parent, os.W_OK):
        raise OSError(f"{shown}: cannot replace it: no permission")
    return path


def _escape_surrogates(err: UnicodeError):
    """A codec error handler: lone surrogates written as ``\\xff`` text (see ``printable``)."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    return printable(err.object[err.start:err.end]), err.end


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text written atomically; a file name that is not UTF-8 inside it is escaped (``printable``)."""
    return atomic_write_bytes(path, text.encode("utf-8", "batchemo-escape"))


#: A temp file whose name holds no pid (an older batchemo's) is stale once untouched this long (seconds).
LEGACY_TEMP_AGE = 24 * 3600


def writer_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (on this machine): signal 0 probes without sending anything."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def _stale(f: Path) -> bool:
    head = f.name[len(TEMP_PREFIX):].split(".", 1)[0]
    if head.isascii() and head.isdigit():
        return int(head) != os.getpid() and not writer_alive(int(head))
    try:
        return f.stat().st_mtime < time.time() - LEGACY_TEMP_AGE
    except OSError:
        return False


def remove_stale_temp_files(folder: str | os.PathLike, name: str | None = None) -> int:
    """Remove the temp files an interrupted batchemo run left in ``folder`` (for output ``name``, or all of
    them); returns how many. A killed process cannot clean up after itself, so the next run does, but only
    after files whose writer is provably gone (its pid, in the name, no longer runs): a concurrent run
    writing the same output keeps its temp file."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    pattern = f"{TEMP_PREFIX}*-{glob.escape(_temp_tail(name))}" if name else f"{TEMP_PREFIX}*"
    removed = 0
    for f in folder.glob(pattern):
        try:
            if _stale(f):
                f.unlink()
                removed += 1
        except OSError:
            pass
    return removed


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
