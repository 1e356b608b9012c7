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
