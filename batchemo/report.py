"""The self-contained HTML reports: Jinja2 templates (autoescaped), images embedded as data URIs.

Every report reads the one results table the engine produces; nothing here runs a model.
"""
from __future__ import annotations

import base64
import os
from datetime import datetime
from pathlib import Path

from .model import CLASSES
from .outputs import atomic_write_text

_ENV = None


def _template_dir() -> Path:
    """Installed: the ``batchemo.templates`` package data; from a checkout: the top-level templates/."""
    try:
        from importlib.resources import files

        path = Path(str(files("batchemo.templates")))
        if (path / "base.html.j2").exists():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "templates"


def environment():
    global _ENV
    if _ENV is None:
        from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

        _ENV = Environment(
            loader=FileSystemLoader(str(_template_dir())),
            autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _ENV


def data_uri(data, mime: str | None = None) -> str:
    """Embed image bytes; the MIME type is sniffed from the bytes (JPEG or PNG). Anything else (None, a
    pandas NaN for a row without that image) gives "", so templates can test it."""
    if not isinstance(data, bytes) or not data:
        return ""
    if mime is None:
        mime = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def base_context(model_card: dict) -> dict:
    from . import __version__
    from .engine import EMOTION_COLOURS

    return {
        "version": __version__,
        "created": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "colours": EMOTION_COLOURS,
        "model": _Card(model_card),
    }


class _Card(dict):
    """Model card fields as attributes for the templates; a missing one reads as empty, not an error."""

    def __getattr__(self, key):
        return self.get(key, "")


def render(template: str, context: dict, out: str | os.PathLike) -> Path:
    html = environment().get_template(template).render(**context)
    return atomic_write_text(out, html)


def _face_view(r) -> dict:
    return {
        "face_index": int(r["face_index"]), "label": r["label"], "confidence": float(r["confidence"]),
        "x": int(r["x"]), "y": int(r["y"]), "w": int(r["w"]), "h": int(r["h"]),
        "probs": {c: float(r[f"p_{c}"]) for c in CLASSES},
        "face_jpg": data_uri(r.get("face_jpg")),
        "heatmap_img": data_uri(r.get("heatmap_img")),
        "lime_img": data_uri(r.get("lime_img")),
        "lime_label": r.get("lime_label") or "", "lime_score": _num(r.get("lime_score")),
    }


def _num(v):
    try:
        import math

        return None if v is None or math.isnan(float(v)) else float(v)
    except (TypeError, ValueError):
        return None


STATUS_TEXT = {"ok": "faces found", "no_faces": "no face found", "failed": "failed"}


def run_context(df) -> dict:
    """Everything run.html.j2 shows, computed from the results table."""
    from .engine import STATUS_OK, summary

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


def write_run_report(df, out: str | os.PathLike, video_run=None) -> Path:
    """The report of ``batchemo run``: summary, statistics, a card per image, links to video timelines."""
    ctx = base_context(df.attrs.get("model", {}))
    ctx.update(run_context(df))
    ctx["videos"] = []
    if video_run is not None:
        ctx["videos"] = [
            dict(link.as_dict(), href=video_run.href(link, relative_to=Path(out).parent) if video_run.report else "")
            for link in video_run.videos
        ]
    return render("run.html.j2", ctx, out)
