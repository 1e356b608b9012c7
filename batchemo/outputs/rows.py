"""Table rows, made at the edge from the records the analysis returns: the one place that knows the schemas.

Every table batchemo writes has its columns here: the run table (``TABLE_COLUMNS``), the video timeline
(``TIMELINE_COLUMNS``) and the moments (``MOMENT_COLUMNS``); ``columns`` says what each means. Workers and
the video analysis hand over records (``core.records.ImageResult``, ``TimelineChunk``, ``Moment``); rows are
made from them here, with each face's person once the run has named it, so no column is filtered by
name, no image travels in a row and no row is written twice.
"""
from __future__ import annotations

import math

import numpy as np

from ..core.records import (
    CLASSES,
    PROB_COLUMNS,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_VIDEO,
    Faces,
    ImageResult,
    Moment,
    TimelineChunk,
    folder_of,
)
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
#: The video timeline (``batchemo video --csv``, ``PREFIX.timeline.csv`` of ``batchemo run``): one row per
#: face per sampled frame. ``label``, ``confidence`` and ``p_*`` are smoothed over time; ``raw_*`` are the
#: CNN's own for that frame alone.
TIMELINE_COLUMNS = [
    "video", "frame", "time", "face_id", "person", "x", "y", "w", "h", "score", "label", "confidence",
    *PROB_COLUMNS, "raw_label", "raw_confidence", "uncertain", *(f"raw_{c}" for c in PROB_COLUMNS),
]
#: The moments worth jumping to (``--moments``): one row per moment, in time order (pipeline.moments).
MOMENT_COLUMNS = ["video", "person", "face_id", "kind", "time", "frame", "label", "confidence", "previous", "held",
                  "x", "y", "w", "h"]
#: Columns of text in batchemo's tables (every other column is a number), for typed formats (Parquet).
TEXT_COLUMNS = frozenset({"path", "folder", "status", "reason", "label", "lime_label", "person", "video",
                          "raw_label", "kind", "previous"})
#: Columns of true/false in batchemo's tables (``uncertain``: the label is below confidence.UNCERTAIN_CONFIDENCE).
BOOL_COLUMNS = frozenset({"uncertain"})


def table_columns(embeddings: bool = False) -> list[str]:
    """The run table's columns, with the 128 embedding columns when asked."""
    return TABLE_COLUMNS + (EMBEDDING_COLUMNS if embeddings else [])


def image_rows(rec: ImageResult, embeddings: bool = False, person_of: dict | None = None) -> list[dict]:
    """The run table's rows of one input: one per face, or one saying what became of the file.

    ``embeddings``: add each face's EMBEDDING_COLUMNS (NaN where it has none). ``person_of``: (path, face
    index) -> person, known once the whole run is in (``RunResult.person_of_face``); without it ``person``
    is empty.
    """
    base = {"path": rec.path, "folder": rec.folder, "status": rec.status, "reason": rec.reason,
            "image_width": rec.width, "image_height": rec.height}
    if rec.status != STATUS_OK or not len(rec):
        return [base]
    person_of = person_of or {}
    return [dict(base, **face_cells(rec.faces, i, embeddings), person=person_of.get((rec.path, i), ""))
            for i in range(len(rec))]


def face_cells(faces: Faces, i: int, embeddings: bool = False) -> dict:
    """The cells of face ``i``: box, detector score, label, whether it is uncertain (emotions.doubt),
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


def timeline_rows(chunk: TimelineChunk, person_of: dict[int, str] | None = None) -> list[dict]:
    """The timeline's rows of one chunk of a video (TIMELINE_COLUMNS): ``person`` by face id from
    ``person_of``. ``uncertain`` follows the smoothed confidence the row shows (and a face that cannot be
    read is always uncertain). Times are rounded to the millisecond and probabilities to 1e-4: the CSV
    stays readable, and the CNN is not more precise than that."""
    person_of = person_of or {}
    rows = []
    for i in range(len(chunk)):
        s, r = chunk.smoothed[i], chunk.raw[i]
        k, kr = int(np.argmax(s)), int(np.argmax(r))
        x, y, w, h = map(int, chunk.boxes[i])
        rows.append({
            "video": chunk.video, "frame": int(chunk.frame[i]), "time": round(float(chunk.time[i]), 3),
            "face_id": int(chunk.face_id[i]), "person": person_of.get(int(chunk.face_id[i]), ""),
            "x": x, "y": y, "w": w, "h": h, "score": round(float(chunk.scores[i]), 4), "label": CLASSES[k],
            "confidence": round(float(s[k]), 4), **{c: round(float(v), 4) for c, v in zip(PROB_COLUMNS, s)},
            "raw_label": CLASSES[kr], "raw_confidence": round(float(r[kr]), 4),
            "uncertain": uncertain_label(float(s[k])) or bool(chunk.unreadable[i]),
            **{f"raw_{c}": round(float(v), 4) for c, v in zip(PROB_COLUMNS, r)},
        })
    return rows


def moment_rows(moments: list[Moment], person_of: dict[int, str] | None = None) -> list[dict]:
    """The moments table's rows (MOMENT_COLUMNS) of one video's moments, in time order."""
    person_of = person_of or {}
    return [{"video": m.video, "person": person_of.get(m.face_id, ""), "face_id": m.face_id, "kind": m.kind,
             "time": round(m.time, 3), "frame": m.frame, "label": m.label, "confidence": round(m.confidence, 4),
             "previous": m.previous, "held": round(m.held, 2), "x": m.box[0], "y": m.box[1], "w": m.box[2],
             "h": m.box[3]} for m in sorted(moments, key=lambda m: (m.time, m.face_id))]


def clean(value):
    """A cell as a plain Python value: numpy scalars unwrapped, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
