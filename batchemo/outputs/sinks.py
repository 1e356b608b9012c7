"""Where a run's records go as it streams, and the tables made from them once every person is named.

A run hands each photo's record to its sinks as soon as it is computed (``pipeline.run``), but a face's
``person`` is known only when the whole run is in. So the sinks hold rows without it (``RowSpool``: on
disk, memory stays flat) and write each table once, whole and atomically, when the run is closed with its
result: the run table from the spooled rows, the timeline and the moments from each video's own spool.
Nothing is written twice and no finished file is read back.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..core.records import ImageResult
from ..pipeline.spool import Spool
from .rows import MOMENT_COLUMNS, TIMELINE_COLUMNS, image_rows, moment_rows, table_columns, timeline_rows, video_row
from .tables import TableWriter


class RowSpool:
    """Rows of the run table in input order, spooled to a private temp folder until people are named."""

    def __init__(self, embeddings: bool = False, timeline: str = "the timeline table"):
        self.embeddings, self.timeline = embeddings, timeline
        self._dir = Path(tempfile.mkdtemp(prefix="batchemo-rows-"))
        self._spool = Spool(self._dir / "rows.spool", sync=False)  # private and never resumed

    def write(self, rec: ImageResult) -> None:
        """One photo's record: its rows, person to come (the record keeps its path and face indices)."""
        self._spool.append(("image", rec.path, image_rows(rec, self.embeddings)))

    def write_video(self, analysis, root: str | None) -> None:
        self._spool.append(("video", None, [video_row(analysis.info, root, self.timeline)]))

    def rows(self, person_of: dict[tuple[str, int], str]):
        """Every row, in input order, with ``person`` from (path, face index) -> person."""
        for kind, path, rows in self._spool:
            for row in rows:
                if kind == "image" and row.get("face_index") is not None:
                    row["person"] = person_of.get((path, int(row["face_index"])), "")
                yield row

    def remove(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


class TableSink(RowSpool):
    """The run table to ``paths`` (.csv, .json, .parquet), written once ``close(result)`` names people."""

    def __init__(self, paths: list[str | os.PathLike], embeddings: bool = False, timeline: str = "the timeline table"):
        super().__init__(embeddings, timeline)
        self.paths = [Path(p) for p in paths]

    def close(self, result) -> list[Path]:
        """Write every table of ``paths`` from the spooled rows; the spool is removed."""
        try:
            person_of = result.person_of_face()
            return [write_rows(self.rows(person_of), p, table_columns(self.embeddings)) for p in self.paths]
        finally:
            self.remove()


def write_rows(rows, path: str | os.PathLike, columns: list[str]) -> Path:
    """Rows streamed into one table file, moved into place only once complete."""
    with TableWriter(path, columns) as w:
        for row in rows:
            w.write([row])
    return Path(path)


def write_timeline(videos: list, path: str | os.PathLike) -> Path:
    """The timeline of every video (TIMELINE_COLUMNS), streamed from their spools, people filled."""
    return write_rows((row for v in videos for chunk in v.chunks() for row in timeline_rows(chunk, v.person_of())),
                      path, TIMELINE_COLUMNS)


def write_moments(videos: list, path: str | os.PathLike) -> Path:
    """The moments of every video (MOMENT_COLUMNS), people filled."""
    return write_rows((row for v in videos for row in moment_rows(v.moments, v.person_of())), path, MOMENT_COLUMNS)
