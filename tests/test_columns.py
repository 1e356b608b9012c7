"""The column meanings that --help and the README print name exactly the columns batchemo writes."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from batchemo.outputs.columns import AUDIT, MOMENTS, RUN, TIMELINE, expand, help_text

README = Path(__file__).resolve().parent.parent / "README.md"


def test_run_and_timeline_meanings_follow_the_written_order():
    from batchemo.outputs.rows import MOMENT_COLUMNS, TIMELINE_COLUMNS, table_columns

    assert expand(RUN) == table_columns(embeddings=True)
    assert expand(TIMELINE) == TIMELINE_COLUMNS
    assert expand(MOMENTS) == MOMENT_COLUMNS


def test_audit_meanings_follow_the_audit_table():
    from types import SimpleNamespace

    from batchemo.emotions.evaluate import Evaluation
    from batchemo.pipeline.audit import AuditResult
    from batchemo.sources.votes import verdicts

    probs = np.eye(7, dtype=np.float32)[[3, 5]]
    ev = Evaluation(np.array([3, 4]), probs, ["a.jpg", "b.jpg"])
    names = expand(AUDIT)
    plain = names[: names.index("people_label")]
    assert ev.table().columns.tolist() == plain
    assert ev.table()["correct"].tolist() == [True, False]
    votes = np.array([[0, 9, 1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 8, 2, 0, 0, 0, 0, 0]])  # happy; sad
    with_votes = SimpleNamespace(evaluation=ev, votes=votes, verdicts=verdicts(votes, ev.labels, ev.predictions))
    table = AuditResult.table(with_votes)
    assert table.columns.tolist() == names
    assert table["verdict"].tolist() == ["", "disputed_label"]  # labelled neutral, read sad, and 8 of 10 say sad


def test_patterns_expand_to_every_emotion_and_embedding():
    names = expand(["p_<emotion>", "emb_<i>", "x"])
    assert names[:7] == ["p_angry", "p_disgust", "p_fear", "p_happy", "p_neutral", "p_sad", "p_surprise"]
    assert names[7] == "emb_0" and names[-2] == "emb_127" and names[-1] == "x" and len(names) == 136


def test_help_text_lists_every_column_once():
    text = help_text(RUN, "columns:")
    listed = [line.split()[0] for line in text.splitlines()[1:] if re.match(r"  \S", line)]
    assert listed == list(RUN)


def _readme_table(heading: str) -> list[str]:
    """Column names (first cell, in backticks) of the table under ``heading`` in README.md."""
    text = README.read_text(encoding="utf-8")
    assert heading in text, f"README.md has no section {heading!r}"
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", section, re.M)]


def test_readme_documents_every_column_of_every_table():
    assert _readme_table("### The run table") == list(RUN)
    assert _readme_table("### The video timeline") == list(TIMELINE)
    assert _readme_table("### The moments") == list(MOMENTS)
    assert _readme_table("### The audit table") == list(AUDIT)
