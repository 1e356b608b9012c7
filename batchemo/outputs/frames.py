"""The tables as pandas DataFrames, for a notebook: what ``batchemo.analyze``, ``run`` and ``analyze_video``
return. The same rows as the files (``rows``), kept in memory.
"""
from __future__ import annotations

import os
from typing import Iterable

from .rows import INT_COLUMNS, MOMENT_COLUMNS, TIMELINE_COLUMNS, moment_rows, table_columns, timeline_rows
from .sinks import RowSpool


def run(paths: str | os.PathLike | Iterable[str | os.PathLike], options=None, *, sinks=(), **changes):
    """``pipeline.run.run`` with its tables as DataFrames: a RunResult whose ``table`` (one row per face and
    per input without one), ``timeline`` (one row per face per sampled video frame) and ``moments`` are
    filled, ``person`` included. ``sinks``: more receivers of the records as they come (``pipeline.run``).
    Keyword arguments are RunOptions' fields (any other is a detector option)."""
    from ..pipeline.run import RunOptions
    from ..pipeline.run import run as run_records

    opts = RunOptions.of(options, **changes)
    sink = RowSpool(opts.embeddings and opts.people)
    try:
        result = run_records(paths, opts, sinks=[sink, *sinks])
        result.table = run_frame(sink.rows(result.person_of_face()), table_columns(opts.embeddings and opts.people))
    finally:
        sink.remove()
    result.table.attrs.update(result.info)
    result.timeline = timeline_frame(result.videos)
    result.moments = moments_frame(result.videos)
    return result


def analyze(paths: str | os.PathLike | Iterable[str | os.PathLike], options=None, **changes):
    """Faces, emotions and (optionally) LIME explanations for every photo and video under ``paths``: a
    pandas DataFrame, the table ``batchemo run --csv`` writes.

    One row per face, plus one row per input without a face, that failed or that was skipped, and one per
    video (status ``video``; its per-frame timeline is ``run(...).timeline``), with ``status`` and
    ``reason``. Columns: rows.TABLE_COLUMNS; ``df.attrs``: settings, model card, counts and timing.
    ``person``: faces grouped into people over the whole call, photos and videos together. Keyword
    arguments are RunOptions' fields (any other is a detector option).
    """
    from ..pipeline.run import RunOptions

    return run(paths, RunOptions.of(options, **changes), gallery=0).table


def analyze_video(path: str | os.PathLike, model=None, fps: float = 2.0, detector="auto", smooth: float | None = 1.0,
                  **options):
    """The emotion timeline of one video: a DataFrame, one row per face per sampled frame (TIMELINE_COLUMNS:
    ``label``, ``confidence`` and ``p_*`` smoothed over ``smooth`` seconds, ``raw_*`` the CNN's own), people
    named among its faces. ``df.attrs``: status (ok / no_faces / partial / failed), reason, warnings,
    duration, frames, faces, seconds and the settings; ``df.attrs["moments"]``: its moments as a
    DataFrame. A bad file never raises: status ``failed`` and a reason instead."""
    from ..pipeline.video import analyze_videos

    (result,) = analyze_videos([path], model, fps=fps, detector=detector, smooth=smooth, **options)
    df = timeline_frame([result])
    df.attrs = dict(result.info, moments=moments_frame([result]))
    return df


def run_frame(rows, columns: list[str]):
    """Run-table rows as a typed DataFrame (whole numbers nullable, text never NaN)."""
    import pandas as pd

    from ..core.files import printable

    rows = list(rows)
    for row in rows:  # a file name that is not UTF-8 is kept escaped: pandas refuses lone surrogates
        for col in ("path", "folder", "reason"):
            if isinstance(row.get(col), str):
                row[col] = printable(row[col])
    table = pd.DataFrame(rows, columns=columns)
    for col in INT_COLUMNS:
        table[col] = table[col].astype("Int64")
    table["reason"] = table["reason"].fillna("")
    table["person"] = table["person"].astype(object).where(table["person"].notna(), "")
    return table


def timeline_frame(videos: list):
    """Every video's timeline rows as one DataFrame (TIMELINE_COLUMNS), people filled."""
    import pandas as pd

    rows = [row for v in videos for chunk in v.chunks() for row in timeline_rows(chunk, v.person_of())]
    df = pd.DataFrame(rows, columns=TIMELINE_COLUMNS)
    for col in ("frame", "face_id", "x", "y", "w", "h"):
        df[col] = df[col].astype("int64")
    df["uncertain"] = df["uncertain"].astype(bool)
    return df


def moments_frame(videos: list):
    """Every video's moments as one DataFrame (MOMENT_COLUMNS), people filled."""
    import pandas as pd

    return pd.DataFrame([row for v in videos for row in moment_rows(v.moments, v.person_of())],
                        columns=MOMENT_COLUMNS)
