"""What every column of batchemo's tables means, in one line each: the words ``--help`` and the README use.

The column *order* lives where the rows are made (``rows.TABLE_COLUMNS``, ``rows.TIMELINE_COLUMNS``,
``rows.MOMENT_COLUMNS``, ``emotions.evaluate.Evaluation.table``); this module only names their meaning,
and the tests check that the three agree (tests/test_columns.py). ``p_<emotion>`` stands for the 7 columns
``p_angry`` ... ``p_surprise`` in ``CLASSES`` order, ``emb_<i>`` for ``emb_0`` ... ``emb_127``.
"""
from __future__ import annotations

import textwrap

from ..core.records import CLASSES

#: ``batchemo run --csv/--json``, ``batchemo.analyze``: one row per face, and one per input without one.
RUN = {
    "path": "the file, as found under the PATH given",
    "folder": "its folder relative to that PATH (. at the top)",
    "status": "ok, no_faces, failed, skipped (not a kind batchemo reads), video (faces in the timeline)",
    "reason": "why, for every status but ok; on a face: why it has no person",
    "face_index": "0, 1, ... the faces of one image, left to right",
    "x": "left edge of the face box, pixels of the original image",
    "y": "top edge of the face box, pixels",
    "w": "width of the face box, pixels",
    "h": "height of the face box, pixels",
    "score": "the detector's confidence in the face (yunet: 0-1)",
    "label": "the emotion: the highest of the p_ columns",
    "confidence": "its probability, 0-1: about the share of people who would give the face this label",
    "uncertain": "true when confidence is under 0.50 (fewer than half of people would agree), or the face is too "
                 "dark, blurred or small to read",
    "p_<emotion>": "probability of each of the 7 emotions (angry ... surprise); they sum to 1",
    "lime_label": "the emotion the LIME heatmap explains (the label)",
    "lime_score": "LIME fit R²: how well LIME's linear model reproduces the classifier around this face, 0-1",
    "lime_faithfulness": "-1..1: how much better than random the heatmap's order hides and reveals the label "
                         "(under 0.20 weak, 0.40 and over strong)",
    "lime_deletion_auc": "the label's mean probability as the heatmap's regions are hidden, best first (lower "
                         "is better)",
    "lime_insertion_auc": "the same as they are revealed on a hidden face (higher is better)",
    "person": "person_1, person_2 ... in order of first appearance, or a --known-faces name; empty: see reason",
    "image_width": "the original image's width, pixels",
    "image_height": "its height, pixels",
    "emb_<i>": "only with --embeddings: the face's 128-number identity embedding (it identifies people)",
}

#: ``batchemo video --csv``, ``PREFIX.timeline.csv`` of ``batchemo run``: one row per face per sampled frame.
TIMELINE = {
    "video": "the video file",
    "frame": "frame index, from 0",
    "time": "seconds from the start",
    "face_id": "the track: one appearance of a face (back after leaving: a new id, the same person)",
    "person": "as in the run table, shared with the photos of the same run",
    "x": "left edge of the face box, pixels of the frame",
    "y": "top edge, pixels",
    "w": "width, pixels",
    "h": "height, pixels",
    "score": "the detector's confidence",
    "label": "the emotion after smoothing over time (--smooth seconds, default 1)",
    "confidence": "its smoothed probability",
    "p_<emotion>": "the smoothed probability of each emotion",
    "raw_label": "the CNN's own label for this frame alone",
    "raw_confidence": "its probability",
    "uncertain": "true when confidence (smoothed) is under 0.50, or the face is too dark, blurred or small to read",
    "raw_p_<emotion>": "the CNN's own probability of each emotion for this frame",
}

#: ``--moments``: the moments of the videos worth jumping to, one row each, in time order.
MOMENTS = {
    "video": "the video file",
    "person": "whose moment (as in the timeline); empty without people",
    "face_id": "the track it happened in",
    "kind": "peak: the person's strongest moment of this emotion; change: their mood changed here",
    "time": "seconds from the start",
    "frame": "frame index",
    "label": "the emotion (smoothed, as the timeline shows it)",
    "confidence": "its smoothed probability",
    "previous": "a change: the emotion held before",
    "held": "seconds the emotion held (a change: after it)",
    "x": "left edge of the face box, pixels of the frame",
    "y": "top edge, pixels",
    "w": "width, pixels",
    "h": "height, pixels",
}

#: ``batchemo audit --csv``: one row per labelled face.
AUDIT = {
    "path": "the labelled image (or fer2013.csv:LINE)",
    "true_label": "the emotion the data set gives it",
    "predicted_label": "the model's label",
    "confidence": "its probability",
    "p_<emotion>": "probability of each emotion",
    "correct": "true when predicted_label is true_label",
    "people_label": "with --votes: the emotion most of FER+'s ten people chose (empty: no clear majority)",
    "people_agree_true": "with --votes: the share of people's emotion votes for true_label",
    "people_agree_predicted": "with --votes: the share for predicted_label",
    "verdict": "with --votes, on a mistake: disputed_label (most people chose the model's label), model_error "
               "(most chose the data set's), other (a third emotion) or no_majority",
    "votes_<vote>": "with --votes: FER+'s vote counts (neutral, happiness, surprise, sadness, anger, disgust, "
                    "fear, contempt, unknown, nf = not a face)",
}


def expand(names) -> list[str]:
    """Column names with the patterns spelled out: ``p_<emotion>`` -> p_angry ... , ``emb_<i>`` -> emb_0 ..."""
    out: list[str] = []
    for name in names:
        if name.endswith("<emotion>"):
            out += [name.replace("<emotion>", c) for c in CLASSES]
        elif name == "emb_<i>":
            out += [f"emb_{i}" for i in range(128)]
        elif name == "votes_<vote>":
            from ..sources.votes import FERPLUS_COLUMNS

            out += [f"votes_{v}" for v in FERPLUS_COLUMNS]
        else:
            out.append(name)
    return out


def help_text(columns: dict[str, str], title: str) -> str:
    """The columns as an argparse epilog (use RawDescriptionHelpFormatter): one indented line each."""
    width = max(map(len, columns)) + 2
    lines = [title]
    for name, meaning in columns.items():
        wrapped = textwrap.wrap(meaning, 100 - width - 2) or [""]
        lines.append(f"  {name:<{width}}{wrapped[0]}")
        lines += [" " * (width + 2) + more for more in wrapped[1:]]
    return "\n".join(lines)
