"""The audit's self-contained HTML report: an ``audit.AuditResult`` turned into template data (numbers and images).

Nothing here runs a model; user-supplied text (file names, paths) reaches the page only through Jinja2's
autoescaping. Images are embedded as data URIs and the reliability diagram is inline SVG, so the file
needs no network.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..core.records import CLASSES
from ..emotions.tta import describe as describe_tta
from . import base_context, data_uri, render
from .pictures import encode, heatmap_image

FACE_SIDE = 112  # px, gallery faces and heatmaps
SAMPLE_SIDE = 96  # px, random-sample faces


def _jpeg(gray_or_rgb: np.ndarray, side: int) -> str:
    import cv2

    img = cv2.resize(np.asarray(gray_or_rgb, np.uint8), (side, side), interpolation=cv2.INTER_LINEAR)
    return data_uri(encode(img, ".jpg", 92))


def _heatmap(face: np.ndarray, exp) -> str:
    return data_uri(encode(heatmap_image(face, exp.heatmap, FACE_SIDE), ".jpg", 92))


def _name(source: str) -> str:
    """A file's base name; a CSV row (``fer2013.csv:123``) keeps its line number."""
    return os.path.basename(source) or source


def _finite(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def reliability_geometry(bins: list, width: int = 320, height: int = 220) -> dict:
    """Coordinates for the inline-SVG reliability diagram (accuracy bars, gaps to the diagonal, a histogram)."""
    left, top, hist_h = 46, 12, 46
    hist_top = top + height + 40
    n = len(bins)
    step = width / n if n else width
    most = max((b.count for b in bins), default=0) or 1

    def x(v: float) -> float:
        return round(left + v * width, 1)

    def y(v: float) -> float:
        return round(top + (1 - v) * height, 1)

    bars = []
    for b in bins:
        if not b.count:
            continue
        acc, conf = b.accuracy, b.confidence
        bars.append({
            "x": round(x(b.lower) + 1, 1), "w": round(step - 2, 1),
            "y": y(acc), "h": round(acc * height, 1),
            "gap_y": y(max(acc, conf)), "gap_h": round(abs(conf - acc) * height, 1),
            "over": conf > acc,
            "hist_y": round(hist_top + hist_h * (1 - b.count / most), 1), "hist_h": round(hist_h * b.count / most, 1),
            "title": f"confidence {b.lower:.1f}–{b.upper:.1f}: {b.count} faces, mean confidence {conf:.1%}, "
                     f"accuracy {acc:.1%}",
        })
    ticks = [{"v": f"{t:.1f}", "x": x(t), "y": y(t)} for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    return {
        "width": left + width + 12, "height": hist_top + hist_h + 34, "left": left, "top": top,
        "right": x(1.0), "bottom": y(0.0), "hist_top": hist_top, "hist_bottom": hist_top + hist_h,
        "mid_x": x(0.5), "mid_y": y(0.5), "bars": bars, "ticks": ticks, "most": most,
    }


def _faithfulness(result) -> dict | None:
    """Median faithfulness of the heatmaps of the predicted and of the true class, over the explained mistakes."""
    out = {}
    for key, pick in (("predicted", lambda m: m.predicted), ("true", lambda m: m.true)):
        values = [m.explanations[pick(m)].faithfulness for m in result.explained if pick(m) in m.explanations]
        values = [v for v in values if v == v]
        if values:
            out[key] = float(np.median(values))
    return out or None


def audit_context(result) -> dict:
    """Everything audit.html.j2 shows, computed from the audit result."""
    ev = result.evaluation
    rep = ev.report()
    per_class = [
        {"name": c, "precision": rep[c]["precision"], "recall": rep[c]["recall"], "f1": rep[c]["f1-score"],
         "support": int(rep[c]["support"])}
        for c in CLASSES
    ]
    averages = [
        {"name": k, "precision": rep[k]["precision"], "recall": rep[k]["recall"], "f1": rep[k]["f1-score"],
         "support": int(rep[k]["support"])}
        for k in ("macro avg", "weighted avg")
    ]
    cm = ev.confusion
    totals = cm.sum(1)
    confusion = [
        {"true": t, "total": int(totals[i]), "cells": [
            {"pred": p, "count": int(cm[i, j]), "rate": float(cm[i, j] / totals[i]) if totals[i] else 0.0,
             "diagonal": i == j}
            for j, p in enumerate(CLASSES)
        ]}
        for i, t in enumerate(CLASSES)
    ]
    gallery, others = _gallery(result)
    sample = [
        {"name": _name(s.source), "source": s.source, "true": s.true, "predicted": s.predicted,
         "confidence": s.confidence, "correct": s.correct, "face": _jpeg(s.face, SAMPLE_SIDE)}
        for s in result.sample
    ]
    n = len(ev.labels)
    mean_conf = float(ev.probabilities.max(1).mean()) if n else float("nan")
    return {
        "origin": result.origin, "model_name": result.model_name, "tta": result.tta,
        "model_reads": describe_tta(result.tta, result.model_card.get("architecture", "")),
        "faces": n, "accuracy": result.accuracy, "macro_f1": result.macro_f1, "mistakes": result.mistakes,
        "ece": _finite(result.ece), "mean_confidence": _finite(mean_conf),
        "per_class": per_class, "averages": averages, "confusion": confusion, "classes": list(CLASSES),
        "gallery": gallery, "other_pairs": others, "explained": len(result.explained),
        "faithfulness": _faithfulness(result),
        "sample": sample, "sample_correct": sum(s["correct"] for s in sample),
        "bins": [{"lower": b.lower, "upper": b.upper, "count": b.count, "confidence": _finite(b.confidence),
                  "accuracy": _finite(b.accuracy)} for b in result.bins],
        "reliability": reliability_geometry(result.bins),
        "skipped": [{"source": s, "reason": r} for s, r in result.skipped],
        "settings": result.settings, "seconds": result.timings.get("total", 0.0),
        **_people(result),
    }


def _gallery(result) -> tuple[list[dict], list[dict]]:
    """(the confused pairs with explained mistakes, each mistake's pictures and votes; the other pairs)."""
    gallery, others = [], []
    for g in result.groups:
        if not g.shown:
            others.append({"true": g.true, "predicted": g.predicted, "count": g.count})
            continue
        items = []
        for m in g.shown:
            pe, te = m.explanations.get(m.predicted), m.explanations.get(m.true)
            items.append({
                "name": _name(m.source), "source": m.source, "row": m.index,
                "p_predicted": m.p_predicted, "p_true": m.p_true, "face": _jpeg(m.face, FACE_SIDE),
                "heat_predicted": _heatmap(m.face, pe) if pe else "", "heat_true": _heatmap(m.face, te) if te else "",
                "score_predicted": _finite(pe.score) if pe else None, "score_true": _finite(te.score) if te else None,
                "faith_predicted": _finite(pe.faithfulness) if pe else None,
                "faith_true": _finite(te.faithfulness) if te else None,
                "votes": _vote_split(m.votes), "verdict": m.verdict,
            })
        gallery.append({"true": g.true, "predicted": g.predicted, "count": g.count, "support": g.support,
                        "rate": g.count / g.support if g.support else 0.0, "shown": items, "disputed": g.disputed})
    return gallery, others


def _vote_split(votes: dict[str, int]) -> list[dict]:
    """A mistake's votes, most first, in batchemo's words: [{"name", "count"}] (empty without votes)."""
    from ..sources.votes import FERPLUS_TO_CLASS

    names = {**FERPLUS_TO_CLASS, "contempt": "contempt", "unknown": "unknown", "nf": "not a face"}
    return [{"name": names[k], "count": v, "emotion": k in FERPLUS_TO_CLASS}
            for k, v in sorted(votes.items(), key=lambda kv: -kv[1]) if v]


def _people(result) -> dict:
    """What the report says against FER+'s votes: accuracy against people and the verdicts' counts."""
    from ..sources.votes import VERDICTS, vote_scores

    if result.votes is None:
        return {"has_votes": False}
    counts = result.verdict_counts()
    scores = vote_scores(result.votes, result.evaluation.probabilities)
    return {"has_votes": True, "people_accuracy": _finite(result.people_accuracy), "verdict_counts": counts,
            "verdict_text": VERDICTS,
            "disputed_share": counts["disputed_label"] / result.mistakes if result.mistakes else None,
            "people_bands": [b for b in scores.bands if b.count], "people_gap": _finite(scores.worst_gap),
            "people_ce": _finite(scores.cross_entropy), "people_floor": _finite(scores.floor)}


def write_audit_report(result, out: str | os.PathLike, csv: str | os.PathLike | None = None) -> Path:
    """The audit as one self-contained HTML file, written atomically. ``csv``: the per-face table written
    beside it (``--csv``), which a mistake then cites by line; without one no line is cited."""
    from .glossary import GLOSSARY

    ctx = base_context(result.model_card, result.model_name if str(result.model_name).endswith(".keras") else None)
    ctx.update(audit_context(result))
    ctx["csv_name"] = os.path.basename(str(csv)) if csv else ""
    ctx["glossary"] = GLOSSARY
    return render("audit.html.j2", ctx, out)


__all__ = ["audit_context", "reliability_geometry", "write_audit_report"]
