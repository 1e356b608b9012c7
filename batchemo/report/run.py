"""The report of ``batchemo run``: summary tiles, aggregate statistics, per-folder table, a card per image."""
from __future__ import annotations

import math
import os
from pathlib import Path

from ..records import CLASSES, STATUS_FAILED, STATUS_NO_FACES, STATUS_OK, STATUS_SKIPPED
from ..confidence import GLOSSARY, MIXED, faithfulness_verdict, uncertain_label
from . import base_context, data_uri, render


def summary(result) -> dict:
    """Counts a person reads first (from an ``engine.RunResult``): images, faces, failures, time."""
    st = result.stats
    return {
        "images": st.inputs - st.count(STATUS_SKIPPED),
        "images_with_faces": st.count(STATUS_OK),
        "images_without_faces": st.count(STATUS_NO_FACES),
        "faces": st.faces,
        "failed": st.count(STATUS_FAILED),
        "skipped": st.count(STATUS_SKIPPED),
        "seconds": float(result.info.get("seconds", 0.0)),
    }


def _face_view(r) -> dict:
    w, h = _num(r.get("image_width")), _num(r.get("image_height"))
    box = {k: 100.0 * float(r[k]) / d for k, d in (("x", w), ("y", h), ("w", w), ("h", h))} if w and h else None
    return {
        "face_index": int(r["face_index"]), "label": r["label"], "confidence": float(r["confidence"]),
        "uncertain": uncertain_label(r["confidence"]), "box_pct": box,
        "faithfulness_verdict": faithfulness_verdict(_num(r.get("lime_faithfulness"))),
        "x": int(r["x"]), "y": int(r["y"]), "w": int(r["w"]), "h": int(r["h"]),
        "probs": {c: float(r[f"p_{c}"]) for c in CLASSES},
        "face_jpg": data_uri(r.get("face_jpg")), "crop_jpg": data_uri(r.get("crop_jpg")),
        "heatmap_img": data_uri(r.get("heatmap_img")),
        "lime_img": data_uri(r.get("lime_img")),
        "lime_label": r.get("lime_label") or "", "lime_score": _num(r.get("lime_score")),
        "score": _num(r.get("score")), "lime_faithfulness": _num(r.get("lime_faithfulness")),
    }


def _num(v):
    try:
        return None if v is None or math.isnan(float(v)) else float(v)
    except (TypeError, ValueError):
        return None


STATUS_TEXT = {"ok": "faces found", "no_faces": "no face found", "failed": "failed", "skipped": "skipped"}


def _card(rows: list[dict]) -> dict:
    first = rows[0]
    status = first["status"]
    faces = [_face_view(r) for r in rows] if status == STATUS_OK else []
    w, h = first.get("image_width"), first.get("image_height")
    path = first["path"]
    return {
        "path": path, "name": os.path.basename(path), "status": status,
        "status_text": STATUS_TEXT.get(status, status) + (f" ({len(faces)})" if faces else ""),
        "reason": first.get("reason") or "", "thumbnail": data_uri(first.get("thumbnail")),
        "size": f"{int(w)}×{int(h)} px" if _num(w) else "", "faces": faces,
        "tags": sorted({f["label"] for f in faces}) if faces else [status],
    }


def run_context(result) -> dict:
    """Everything run.html.j2 shows, from an ``engine.RunResult``: statistics of every input, and the
    gallery's cards (every image of a small run, a bounded choice of a big one)."""
    st = result.stats
    n = st.faces
    distribution = {c: float(st.label_counts[k] / n) if n else 0.0 for k, c in enumerate(CLASSES)}
    mean_probs = {c: float(st.prob_sums[k] / n) if n else 0.0 for k, c in enumerate(CLASSES)}
    folders = []
    for folder in sorted(st.folders):
        f = st.folders[folder]
        shares = {c: float(f["labels"][k] / f["faces"]) if f["faces"] else 0.0 for k, c in enumerate(CLASSES)}
        folders.append({"folder": folder, "images": f["images"], "faces": f["faces"], "shares": shares,
                        "dominant": max(shares, key=shares.get) if f["faces"] else ""})
    cards = [_card(rows) for rows in result.gallery.cards() if rows[0]["status"] in (STATUS_OK, STATUS_NO_FACES)]
    filter_counts = {c: sum(f["label"] == c for card in cards for f in card["faces"]) for c in CLASSES}
    no_faces = sum(not card["faces"] for card in cards)
    uncertain = sum(f["uncertain"] for card in cards for f in card["faces"])
    a = result.info
    return {
        "summary": summary(result), "inputs": a.get("inputs", []), "distribution": distribution,
        "mean_probs": mean_probs, "folders": folders, "cards": cards, "filter_counts": filter_counts,
        "no_faces_count": no_faces, "uncertain_count": uncertain, "glossary": GLOSSARY, "mixed": MIXED,
        "uncertain_shares": {c: float(st.uncertain_counts[k] / n) if n else 0.0 for k, c in enumerate(CLASSES)},
        "uncertain_total": int(st.uncertain_counts.sum()),
        "complete": result.gallery.keep_all, "gallery_size": a.get("gallery"),
        "problems": st.problems, "problems_total": st.problems_total,
        "faithfulness": st.faithfulness_summary(),
        "settings": {k: a.get(k) for k in ("detector", "detector_options", "explain", "lime_samples", "jobs", "backend")},
    }


def write_run_report(result, out: str | os.PathLike, videos: list[dict] | None = None,
                     people: list[dict] | None = None, people_total: int | None = None) -> Path:
    """The report of ``batchemo run`` (an ``engine.RunResult``): summary, statistics, people, failures, the
    gallery, links to video timelines.

    ``videos``: one dict per video of the run (name, status, reason, duration, frames_sampled, faces, href).
    ``people``: the People section (``people.summarise`` with images), or None when people are off;
    ``people_total``: how many people the run found (the section shows the most present).
    Embeddings never reach the report.
    """
    ctx = base_context(result.info.get("model", {}), result.info.get("model_file"))
    ctx.update(run_context(result))
    ctx["videos"] = list(videos or [])
    ctx["people"] = [_person_view(p) for p in people or []]
    ctx["people_on"] = people is not None
    names = {(r.source, r.face_index): r.person for r in result.faces if r.person}
    for c in ctx["cards"]:
        for f in c["faces"]:
            f["person"] = names.get((c["path"], f["face_index"]), "")
    ctx["person_counts"] = {p["name"]: sum(f["person"] == p["name"] for c in ctx["cards"] for f in c["faces"])
                            for p in ctx["people"]}
    ctx["people_total"] = max(people_total or 0, len(ctx["people"]))
    return render("run.html.j2", ctx, out)


def _person_view(p: dict) -> dict:
    def example(e):
        if not e:
            return None
        return {"name": os.path.basename(e["source"]), "label": e["label"], "confidence": e["confidence"],
                "uncertain": uncertain_label(e["confidence"]),
                "face_jpg": data_uri(e.get("face_jpg")), "heatmap_img": data_uri(e.get("heatmap_img"))}

    return dict(p, typical=example(p["typical"]), most=example(p["most"]), least=example(p["least"]))
