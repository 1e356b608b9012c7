"""Everything that leaves the process: atomic file writes, tables, and the small images reports embed.

Files are written to a temp file in the same folder and renamed into place: a crash or a full disk
mid-write leaves the previous file intact, never a half-written one.
"""
from __future__ import annotations

import codecs
import contextlib
import glob
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from .sources import printable, special_kind


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


codecs.register_error("batchemo-escape", _escape_surrogates)


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


def write_table(df, path: str | os.PathLike) -> Path:
    """A DataFrame as CSV, JSON (records) or Parquet, chosen by the file's suffix, written atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    text = [c for c in df.columns if df[c].dtype == object]
    if text:  # a file name that is not UTF-8 (or holds a newline) is escaped: the file stays valid
        df = df.assign(**{c: df[c].map(lambda v: printable(v) if isinstance(v, str) and not v.isprintable() else v)
                          for c in text})
    with atomic_path(path) as tmp:
        if suffix == ".json":
            df.to_json(tmp, orient="records", indent=1, force_ascii=False)
        elif suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
    return path


# ---------------------------------------------------------------- images for reports
EMOTION_COLOURS = {  # RGB, shared with the report's CSS
    "angry": (220, 50, 47), "disgust": (133, 153, 0), "fear": (108, 113, 196), "happy": (230, 160, 0),
    "neutral": (120, 120, 120), "sad": (38, 139, 210), "surprise": (211, 54, 130),
}


def encode(rgb: np.ndarray, fmt: str = ".jpg", quality: int = 85) -> bytes:
    """An RGB (or gray) uint8 image as JPEG or PNG bytes: what reports embed, small enough to keep."""
    import cv2

    bgr = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
    ok, buf = cv2.imencode(fmt, np.ascontiguousarray(bgr), params)
    if not ok:
        raise ValueError("image encoding failed")
    return buf.tobytes()


def fit(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``rgb`` shrunk to at most ``side`` pixels long (never enlarged), and the factor applied."""
    import cv2

    h, w = rgb.shape[:2]
    f = min(1.0, side / max(h, w))
    if f >= 1.0:
        return rgb.copy(), 1.0
    return cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA), f


def square(img: np.ndarray, side: int) -> np.ndarray:
    """A face crop resized to ``side`` x ``side`` for a report (black when the crop is empty)."""
    import cv2

    if img.size == 0:
        return np.zeros((side, side, 3), np.uint8)
    interp = cv2.INTER_AREA if min(img.shape[:2]) > side else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img), (side, side), interpolation=interp)


def annotate(img: np.ndarray, marks, scale: float = 1.0) -> np.ndarray:
    """Boxes and '#i label 87%' tags drawn on a copy of ``img`` (already at display size).

    ``marks`` holds (Box in original pixels, label, confidence, face index); ``scale`` maps original pixels
    to ``img`` pixels. An uncertain label (``confidence.uncertain_label``) ends in '?'. Tags are sized for
    the picture as displayed (about 1/28 of its width, never below a readable 11 px) and placed clear of
    every face box and earlier tag (``place_tags``): above or below their box, beside it, else the free spot
    nearest it; a tag with no free spot on the picture goes to a strip added under it.
    """
    import cv2

    from .confidence import uncertain_label

    out = img.copy()
    h, w = out.shape[:2]
    th = max(1, round(max(h, w) / 300))
    font = cv2.FONT_HERSHEY_SIMPLEX
    size = max(0.42, w / 700)
    boxes = [tuple(int(round(v * scale)) for v in (m[0].x, m[0].y, m[0].w, m[0].h)) for m in marks]
    texts = [f"#{idx} {label} {conf:.0%}" + ("?" if uncertain_label(conf) else "") for _, label, conf, idx in marks]
    sizes = []
    for text in texts:
        (tw, tht), base = cv2.getTextSize(text, font, size, th)
        sizes.append((tw + 6, tht + base + 6, tht))
    spots = place_tags(boxes, [(tw, tag_h) for tw, tag_h, _ in sizes], w, h)
    spill = [k for k, s in enumerate(spots) if s is None]
    if spill:  # a strip under the picture for the tags that fit nowhere on it
        strip_h = sum(sizes[k][1] + 2 for k in spill)
        out = np.concatenate([out, np.full((strip_h, w) + out.shape[2:], 255, out.dtype)])
        top = h
        for k in spill:
            spots[k] = (0, top)
            top += sizes[k][1] + 2
    for (x, y, bw, bh), (_, label, _, _), text, (tw, tag_h, tht), (left, top) in zip(boxes, marks, texts, sizes, spots):
        colour = EMOTION_COLOURS.get(label, (255, 255, 0))
        cv2.rectangle(out, (x, y), (x + bw, y + bh), colour, th + 1)
        cv2.rectangle(out, (left, top), (left + tw, top + tag_h), colour, -1)
        cv2.putText(out, text, (left + 3, top + tht + 3), font, size, (255, 255, 255), th, cv2.LINE_AA)
    return out


def place_tags(boxes: list[tuple[int, int, int, int]], sizes: list[tuple[int, int]], width: int,
               height: int) -> list[tuple[int, int] | None]:
    """Top-left corners for tags of ``sizes`` (w, h) px, one per face box (x, y, w, h) px, inside a
    ``width`` x ``height`` picture, none over any face box (its drawn outline included) or another tag;
    None where no spot is free. Tried in order: above, below, beside the box, then the nearest free spot
    on a 3-px grid."""
    taken = [(x - 2, y - 2, x + bw + 2, y + bh + 2) for x, y, bw, bh in boxes]
    out: list[tuple[int, int] | None] = []

    def free(r):
        return (r[0] >= 0 and r[1] >= 0 and r[2] <= width and r[3] <= height
                and all(r[2] <= q[0] or q[2] <= r[0] or r[3] <= q[1] or q[3] <= r[1] for q in taken))

    for (x, y, bw, bh), (tw, tag_h) in zip(boxes, sizes):
        cands = [(x, y - tag_h - 3), (x, y + bh + 3), (x + bw - tw, y - tag_h - 3), (x + bw - tw, y + bh + 3),
                 (x - tw - 3, y), (x + bw + 3, y)]
        spot = next(((l, t) for l, t in cands if free((l, t, l + tw, t + tag_h))), None)
        if spot is None:
            grid = ((l, t) for t in range(0, max(0, height - tag_h) + 1, 3)
                    for l in range(0, max(0, width - tw) + 1, 3))
            spot = min((p for p in grid if free((p[0], p[1], p[0] + tw, p[1] + tag_h))),
                       key=lambda p: abs(p[0] - x) + abs(p[1] - y), default=None)
        if spot is not None:
            taken.append((spot[0], spot[1], spot[0] + tw, spot[1] + tag_h))
        out.append(spot)
    return out


def heatmap_image(crop: np.ndarray, heatmap: np.ndarray, size: int = 144, alpha: float = 0.55) -> np.ndarray:
    """The face in gray under a diverging colour map of LIME weights: green for, red against the class.

    Scaled symmetrically by the largest absolute weight, so white/neutral means no evidence either way.
    """
    import cv2

    face = cv2.resize(np.asarray(crop, np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    face_rgb = np.stack([face] * 3, -1).astype(np.float32)
    hm = cv2.resize(heatmap.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
    peak = float(np.abs(hm).max())
    v = hm / peak if peak > 0 else hm
    pos, neg = np.clip(v, 0, 1)[..., None], np.clip(-v, 0, 1)[..., None]
    colour = pos * np.array([0, 200, 60], np.float32) + neg * np.array([230, 30, 30], np.float32)
    strength = alpha * np.maximum(pos, neg)
    out = face_rgb * (1 - strength) + colour * strength
    return np.clip(out, 0, 255).astype(np.uint8)


def explanation_images(crop: np.ndarray, exp, side: int = 112) -> tuple[bytes, bytes]:
    """(heatmap, superpixel boundaries) of one Explanation as JPEG bytes for a report."""
    import cv2

    heat = encode(heatmap_image(crop, exp.heatmap, side), ".jpg", 88)
    bounds = encode(cv2.resize(exp.boundaries, (side, side), interpolation=cv2.INTER_NEAREST), ".jpg", 88)
    return heat, bounds


# ---------------------------------------------------------------- streamed tables

class TableWriter:
    """Rows streamed to a CSV, JSON (an array of records) or Parquet file as they are computed.

    Memory stays flat however many rows a run makes. The rows go to a temp file beside ``path``, which
    replaces ``path`` only on ``close()``; ``abort()`` (or an exception inside ``with``) removes it, so an
    earlier file of that name is untouched until the new one is complete. Values: numbers, strings, None
    (NaN and None are written as empty CSV cells and JSON nulls).
    """

    def __init__(self, path: str | os.PathLike, columns: list[str]):
        self.path = Path(path)
        self.columns = list(columns)
        self.format = {".json": "json", ".parquet": "parquet"}.get(self.path.suffix.lower(), "csv")
        if self.format == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise OSError(f"{self.path}: Parquet output needs pyarrow (pip install pyarrow)") from None
        self._tmp = make_temp(self.path)
        self.rows = 0
        self._parquet = None
        self._pending: list[dict] = []
        if self.format == "csv":
            import csv

            self._fh = open(self._tmp, "w", newline="", encoding="utf-8", errors="batchemo-escape")
            self._csv = csv.writer(self._fh)
            self._csv.writerow(self.columns)
        elif self.format == "json":
            self._fh = open(self._tmp, "w", encoding="utf-8", errors="batchemo-escape")
            self._fh.write("[")

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            if not self.closed:
                self.close()
        else:
            self.abort()

    @property
    def closed(self) -> bool:
        return not self._tmp.exists()

    def write(self, rows: list[dict]) -> None:
        with writing(self.path):  # a full disk names the output it stopped
            self._write(rows)

    def _write(self, rows: list[dict]) -> None:
        import json

        for row in rows:
            values = [_plain(row.get(c)) for c in self.columns]
            if self.format == "csv":
                self._csv.writerow(["" if v is None else v for v in values])
            elif self.format == "json":
                sep = "," if self.rows else ""
                self._fh.write(sep + "\n" + json.dumps(dict(zip(self.columns, values)), ensure_ascii=False))
            else:
                self._pending.append(dict(zip(self.columns, values)))
            self.rows += 1
        if self.format == "parquet" and len(self._pending) >= 5000:
            self._flush_parquet()

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._pending and self._parquet is not None:
            return
        from .rows import BOOL_COLUMNS, TEXT_COLUMNS  # the schemas live with the rows (rows.py), not here

        schema = pa.schema([(c, pa.string() if c in TEXT_COLUMNS else pa.bool_() if c in BOOL_COLUMNS
                             else pa.float64()) for c in self.columns])
        batch = pa.Table.from_pylist(self._pending, schema=schema)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._tmp, schema)
        self._parquet.write_table(batch)
        self._pending = []

    def close(self, fill: dict[int, dict] | None = None) -> Path:
        """Finish the file and move it into place.

        ``fill``: cells known only once every row is in (a face's ``person`` needs the whole run), by row
        number: the rows are streamed once more through a second temp file, so memory stays flat.
        """
        try:
            with writing(self.path):
                return self._close(fill)
        except BaseException:  # a full disk while finishing: no temp file left, the earlier file untouched
            self.abort()
            raise

    def _close(self, fill: dict[int, dict] | None) -> Path:
        if self.format == "parquet":
            self._flush_parquet()
            self._parquet.close()
        else:
            if self.format == "json":
                self._fh.write("\n]\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        if fill:
            self._refill(fill)
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)
        return self.path

    def _refill(self, fill: dict[int, dict]) -> None:
        import json

        second = make_temp(self.path)
        try:
            if self.format == "csv":
                import csv

                with open(self._tmp, newline="", encoding="utf-8") as src, \
                        open(second, "w", newline="", encoding="utf-8", errors="batchemo-escape") as dst:
                    reader, writer = csv.reader(src), csv.writer(dst)
                    header = next(reader)
                    writer.writerow(header)
                    where = {c: header.index(c) for c in {k for v in fill.values() for k in v}}
                    for i, row in enumerate(reader):
                        for col, value in fill.get(i, {}).items():
                            row[where[col]] = "" if value is None else value
                        writer.writerow(row)
            elif self.format == "json":
                with open(self._tmp, encoding="utf-8") as src, open(second, "w", encoding="utf-8", errors="batchemo-escape") as dst:
                    i = 0
                    for line in src:
                        text = line.strip()
                        if text in ("[", "]", ""):
                            dst.write(line)
                            continue
                        comma = text.endswith(",")
                        record = json.loads(text[:-1] if comma else text)
                        record.update(fill.get(i, {}))
                        dst.write(json.dumps(record, ensure_ascii=False) + ("," if comma else "") + "\n")
                        i += 1
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                source = pq.ParquetFile(self._tmp)
                writer, i = None, 0
                for batch in source.iter_batches(batch_size=5000):
                    rows = batch.to_pylist()
                    for r in rows:
                        r.update(fill.get(i, {}))
                        i += 1
                    table = pa.Table.from_pylist(rows, schema=source.schema_arrow)
                    writer = writer or pq.ParquetWriter(second, table.schema)
                    writer.write_table(table)
                if writer is not None:
                    writer.close()
            os.replace(second, self._tmp)
        finally:
            second.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop the temp file; the earlier file at ``path``, if any, stays as it was."""
        for closer in (getattr(self, "_fh", None), self._parquet):
            try:
                if closer is not None:
                    closer.close()
            except Exception:  # already closed or half-written: the file is removed anyway
                pass
        self._tmp.unlink(missing_ok=True)


def _plain(v):
    """A table cell as a JSON/CSV-safe Python value (numpy scalars unwrapped, NaN as None)."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, str) and not v.isprintable():
        return printable(v)  # a file name that is not UTF-8, or holds a newline: the file stays valid
    return v


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
