"""The report of ``batchemo run``: summary tiles, aggregate statistics, per-folder table, a card per image."""
from __future__ import annotations

import math
import os
from pathlib import Path

from ..records import CLASSES, STATUS_FAILED, STATUS_NO_FACES, STATUS_OK
from . import base_context, data_uri, render


def summary(df) -> dict:
    """Counts a person reads first: images scanned, with faces, faces, failures."""
    per_image = df.groupby("path", sort=False)["status"].first()
    return {
        "images": int(df.attrs.get("images", len(per_image))),
        "images_with_faces": int((per_image == STATUS_OK).sum()),
        "images_without_faces": int((per_image == STATUS_NO_FACES).sum()),
        "faces": int((df["status"] == STATUS_OK).sum()),
        "failed": int((per_image == STATUS_FAILED).sum()),
        "seconds": float(df.attrs.get("seconds", 0.0)),
    }


def _face_view(r) -> dict:
    return {
        "face_index": int(r["face_index"]), "label": r["label"], "confidence": float(r["confidence"]),
        "x": int(r["x"]), "y": int(r["y"]), "w": int(r["w"]), "h": int(r["h"]),
        "probs": {c: float(r[f"p_{c}"]) for c in CLASSES},
        "face_jpg": data_uri(r.get("face_jpg")),
        "heatmap_img": data_uri(r.get("heatmap_img")),
        "lime_img": data_uri(r.get("lime_img")),
        "lime_label": r.get("lime_label") or "", "lime_score": _num(r.get("lime_score")),
        "score": _num(r.get("score")),
    }


def _num(v):
    try:
        return None if v is None or math.isnan(float(v)) else float(v)
    except (TypeError, ValueError):
        return None


STATUS_TEXT = {"ok": "faces found", "no_faces": "no face found", "failed": "failed"}


def run_context(df) -> dict:
    """Everything run.html.j2 shows, computed from the results table."""
    faces = df[df["status"] == STATUS_OK]
    n = len(faces)
    distribution = {c: float((faces["label"] == c).mean()) if n else 0.0 for c in CLASSES}
    mean_probs = {c: float(faces[f"p_{c}"].mean()) if n else 0.0 for c in CLASSES}
    folders = []
    for folder, g in df.groupby("folder", sort=True):
        gf = g[g["status"] == STATUS_OK]
        shares = {c: float((gf["label"] == c).mean()) if len(gf) else 0.0 for c in CLASSES}
        folders.append({
            "folder": folder, "images": int(g["path"].nunique()), "faces": len(gf), "shares": shares,
            "dominant": max(shares, key=shares.get) if len(gf) else "",
        })
    cards = []
    filter_counts = {c: 0 for c in CLASSES}
    filter_counts.update({"no_faces": 0, "failed": 0})
    for path, g in df.groupby("path", sort=False):
        first = g.iloc[0]
        status = first["status"]
        face_views = [_face_view(r) for _, r in g.iterrows()] if status == STATUS_OK else []
        tags = sorted({f["label"] for f in face_views}) if face_views else [status]
        for t in tags:
            filter_counts[t] = filter_counts.get(t, 0) + 1
        w, h = first.get("image_width"), first.get("image_height")
        cards.append({
            "path": path, "name": os.path.basename(path), "status": status,
            "status_text": STATUS_TEXT.get(status, status) + (f" ({len(face_views)})" if face_views else ""),
            "reason": first.get("reason") or "",
            "thumbnail": data_uri(first.get("thumbnail")),
            "size": f"{int(w)}×{int(h)} px" if _num(w) else "", "faces": face_views, "tags": tags,
        })
    a = df.attrs
    return {
        "summary": summary(df), "inputs": a.get("inputs", []), "distribution": distribution,
        "mean_probs": mean_probs, "folders": folders, "cards": cards, "filter_counts": filter_counts,
        "settings": {k: a.get(k) for k in ("detector", "detector_options", "explain", "lime_samples", "jobs", "backend")},
    }


def write_run_report(df, out: str | os.PathLike, videos: list[dict] | None = None) -> Path:
    """The report of ``batchemo run``: summary, statistics, a card per image, links to video timelines.

    ``videos``: one dict per video of the run (name, status, reason, duration, frames_sampled, faces, href).
    """
    ctx = base_context(df.attrs.get("model", {}))
    ctx.update(run_context(df))
    ctx["videos"] = list(videos or [])
    return render("run.html.j2", ctx, out)
