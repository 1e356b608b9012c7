"""Tables on disk: one writer for CSV, JSON and Parquet, chosen by the suffix, written atomically.
"""
from __future__ import annotations

import codecs
import os
from pathlib import Path

import numpy as np

from ..core.files import _escape_surrogates, atomic_path, make_temp, writing
from ..sources.walk import printable

codecs.register_error("batchemo-escape", _escape_surrogates)


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

    def close(self) -> Path:
        """Finish the file and move it into place."""
        try:
            with writing(self.path):
                return self._close()
        except BaseException:  # a full disk while finishing: no temp file left, the earlier file untouched
            self.abort()
            raise

    def _close(self) -> Path:
        if self.format == "parquet":
            self._flush_parquet()
            if self._parquet is not None:
                self._parquet.close()
        else:
            if self.format == "json":
                self._fh.write("\n]\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)
        return self.path

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
