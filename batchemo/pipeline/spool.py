"""A spool: records appended to one file as an analysis streams, read back in order, cut back on resume.

A video's timeline goes to its spool chunk by chunk (``core.records.TimelineChunk``), so memory stays flat
however long the video, and nothing is lost when the run stops: a checkpoint records the spool's length,
and a resumed run cuts the spool back to that length (dropping what was appended after the checkpoint)
before it goes on. The tables are written from the spool once the people are known.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Iterator


class Spool:
    """Pickled records appended to ``path``; ``size`` is its length in bytes (what a checkpoint records)."""

    def __init__(self, path: str | os.PathLike, keep: int | None = None, sync: bool = True):
        """Open ``path`` for appending; ``keep``: cut it back to this many bytes first (a resume), else start
        it empty. ``sync``: each record on disk before ``append`` returns (what a checkpoint needs; a spool
        nothing resumes from skips the fsync)."""
        self.path, self.sync = Path(path), sync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if keep is None or not self.path.exists():
            self.path.write_bytes(b"")
        elif self.path.stat().st_size > keep:
            with open(self.path, "r+b") as fh:
                fh.truncate(keep)
        self.size = self.path.stat().st_size

    def append(self, record) -> None:
        """Add one record (flushed and synced when ``sync``: a checkpoint may name this length next)."""
        data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        with open(self.path, "ab") as fh:
            fh.write(data)
            if self.sync:
                fh.flush()
                os.fsync(fh.fileno())
        self.size += len(data)

    def __iter__(self) -> Iterator:
        return read(self.path)


def read(path: str | os.PathLike) -> Iterator:
    """The records of a spool file, in the order they were appended (a torn last record is left out)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        while True:
            try:
                yield pickle.load(fh)
            except EOFError:
                return
            except (pickle.UnpicklingError, ValueError):  # a record cut by a kill mid-write
                return
