"""Table rows, made at the edge from the records the analysis returns: the one place that knows the schemas.

Workers and the video analysis hand over records (``records.ImageResult``, ``records.Faces``,
``video.VideoAnalysis``); a sink turns each into rows as it writes it, so no column is filtered by name and
no image travels in a row. ``RowSink`` adapts any ``write(rows)`` writer (``outputs.TableWriter``) to records.
"""
from __future__ import annotations

import math

import numpy as np

from ..core.records import CLASSES, PROB_COLUMNS, STATUS_FAILED, STATUS_OK, STATUS_VIDEO, Faces, ImageResult, folder_of
from ..emotions.doubt import uncertain_label

#: The run table (``batchemo run --csv``, ``batchemo.analyze``), in order: one row per face, and one per
#: input without one (an image without a face, a file that failed or was skipped, a video pointing to its
#: timeline).
TABLE_COLUMNS = [
    "path", "folder", "status", "reason", "face_index", "x", "y", "w", "h", "score", "label", "confidence",
    "uncertain", *PROB_COLUMNS, "lime_label", "lime_score", "lime_faithfulness", "lime_deletion_auc",
    "lime_insertion_auc", "person", "image_width", "image_height",
]
#: With ``embeddings=True`` (``--embeddings``) the table also holds each face's identity embedding.
EMBEDDING_COLUMNS = [f"emb_{i}" for i in range(128)]
#: Whole numbers of the run table (nullable: a row without a face has none).
INT_COLUMNS = ("face_index", "x", "y", "w", "h", "image_width", "image_height")
#: Columns of text in batchemo's tables (every other column is a number), for typed formats (Parquet).
TEXT_COLUMNS = frozenset({"path", "folder", "status", "reason", "label", "lime_label", "person", "video",
                          "label_smoothed"})
#: Columns of true/false in batchemo's tables (``uncertain``: the label is below confidence.UNCERTAIN_CONFIDENCE).
BOOL_COLUMNS = frozenset({"uncertain"})


def table_columns(embeddings: bool = False) -> list[str]:
    """The run table's columns, with the 128 embedding columns when asked."""
    return TABLE_COLUMNS + (EMBEDDING_COLUMNS if embeddings else [])


def image_rows(rec: ImageResult, embeddings: bool = False) -> list[dict]:
    """The run table's rows of one input: one per face, or one saying what became of the file.

    ``embeddings``: add each face's EMBEDDING_COLUMNS (NaN where it has none). ``person`` is left empty:
    it is known only once the whole run is in (``RunResult.person_fill``).
    """
    base = {"path": rec.path, "folder": rec.folder, "status": rec.status, "reason": rec.reason,
            "image_width": rec.width, "image_height": rec.height}
    if rec.status != STATUS_OK or not len(rec):
        return [base]
    return [dict(base, **face_cells(rec.faces, i, embeddings)) for i in range(len(rec))]


def face_cells(faces: Faces, i: int, embeddings: bool = False) -> dict:
    """The cells of face ``i``: box, detector score, label, whether it is uncertain (confidence.py),
    probabilities, the shown explanation's scores."""
    b = faces.box(i)
    p = faces.probabilities[i]
    k = int(np.argmax(p))
    cells = {"face_index": i, "x": b.x, "y": b.y, "w": b.w, "h": b.h, "score": round(float(faces.scores[i]), 4),
             "label": CLASSES[k], "confidence": float(p[k]), "uncertain": uncertain_label(p[k]),
             **dict(zip(PROB_COLUMNS, map(float, p)))}
    why = []
    if faces.unreadable is not None and faces.unreadable[i]:
        cells["uncertain"] = True
        why.append(f"a guess: {faces.unreadable[i]}")
    if faces.embed_reasons is not None and faces.embed_reasons[i]:
        why.append(f"no person: {faces.embed_reasons[i]}")
    if why:
        cells["reason"] = "; ".join(why)
    exp = faces.shown_explanation(i)
    if exp is not None:
        cells.update(lime_label=exp.label, lime_score=exp.score, lime_faithfulness=exp.faithfulness,
                     lime_deletion_auc=exp.deletion_auc, lime_insertion_auc=exp.insertion_auc)
    if embeddings and faces.embeddings is not None:
        cells.update(zip(EMBEDDING_COLUMNS, map(float, faces.embeddings[i])))
    return cells


def video_row(info: dict, root: str | None, timeline: str = "the timeline table") -> dict:
    """The run table's row of one video (``VideoAnalysis.info``): status ``video`` (its faces are in the
    timeline, named by ``timeline``) or ``failed``, and why."""
    path = str(info["video"])
    failed = info["status"] == STATUS_FAILED
    n = int(info.get("faces") or 0)
    reason = info["reason"] if failed else (
        f"{n} face{'s' if n != 1 else ''} tracked, timeline in {timeline}"
        + (f" ({info['reason']})" if info.get("reason") else ""))
    return {"path": path, "folder": folder_of(path, root), "status": STATUS_FAILED if failed else STATUS_VIDEO,
            "reason": reason}


def timeline_rows(faces: Faces, video: str) -> list[tuple]:
    """The timeline's raw cells of one classified, tracked frame: one tuple per face, in
    ``video.TIMELINE_COLUMNS`` order up to the probabilities (smoothing adds the rest)."""
    out = []
    for i in range(len(faces)):
        b, p = faces.box(i), faces.probabilities[i]
        k = int(np.argmax(p))
        out.append((video, faces.frame, faces.time, int(faces.track_ids[i]), "", b.x, b.y, b.w, b.h,
                    float(faces.scores[i]), CLASSES[k], float(p[k]), *map(float, p)))
    return out


def clean(value):
    """A cell as a plain Python value: numpy scalars unwrapped, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class RowSink:
    """Records to rows to a row writer (``outputs.TableWriter`` or anything with ``write(rows)``).

    ``write(record)`` takes an ``ImageResult`` or a video's ``info`` dict with its ``root`` (see
    ``write_video``); ``close(fill)`` passes on the cells known only at the end (people).
    """

    def __init__(self, writer, embeddings: bool = False, timeline: str = "the timeline table"):
        self.writer, self.embeddings, self.timeline = writer, embeddings, timeline

    def write(self, rec: ImageResult) -> None:
        self.writer.write(image_rows(rec, self.embeddings))

    def write_video(self, info: dict, root: str | None) -> None:
        self.writer.write([video_row(info, root, self.timeline)])

    def close(self, fill: dict[int, dict] | None = None):
        return self.writer.close(fill)
