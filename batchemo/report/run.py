"""The report of ``batchemo run``: photos and videos in one file: summary tiles, statistics, people, a card
per kept image, and per video its filmstrip and, per tracked face, a chart and a few keyframes."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..core.records import CLASSES, STATUS_FAILED, STATUS_NO_FACES, STATUS_OK, STATUS_SKIPPED
from ..emotions.doubt import uncertain_label
from ..explain.faithfulness import faithfulness_verdict
from ..outputs.rows import face_cells
from ..people.refs import MIXED
from . import base_context, explanation_pictures, picture, render
from .glossary import GLOSSARY
from .video import fmt_time


def summary(result) -> dict:
    """Counts a person reads first (from an ``analysis.RunResult``): images, videos, faces, failures, time."""
    st = result.stats
    videos = result.videos
    return {
        "images": st.inputs - st.count(STATUS_SKIPPED),
        "images_with_faces": st.count(STATUS_OK),
        "images_without_faces": st.count(STATUS_NO_FACES),
        "faces": st.faces,
        "failed": st.count(STATUS_FAILED),
        "skipped": st.count(STATUS_SKIPPED),
        "videos": len(videos),
        "videos_failed": sum(v.status == STATUS_FAILED for v in videos),
        "tracks": sum(int(v.info.get("faces") or 0) for v in videos),
        "video_seconds": sum(float(v.info.get("duration") or 0.0) for v in videos if v.status != STATUS_FAILED),
        "seconds": float(result.info.get("seconds", 0.0)),
    }


def _face_view(faces, i: int, size: tuple | None = None) -> dict:
    """One face of a gallery card: its cells (rows.face_cells) and its pictures, encoded here. ``size``:
    the photo's (width, height) in pixels, for the box as percentages of the thumbnail the report draws
    it over (``box_pct``; None without it)."""
    from ..sources.images import square

    cells = face_cells(faces, i)
    exp = faces.shown_explanation(i)
    heatmap, lime = explanation_pictures(faces.crops[i], exp)
    colour = faces.colour[i] if faces.colour is not None else square(faces.crops[i], 112)
    w, h = size or (None, None)
    box = {k: 100.0 * float(cells[k]) / d for k, d in (("x", w), ("y", h), ("w", w), ("h", h))} if w and h else None
    return {
        "face_index": i, "label": cells["label"], "confidence": cells["confidence"],
        "uncertain": cells["uncertain"], "box_pct": box,
        "unreadable": faces.unreadable[i] if faces.unreadable else "",
        "faithfulness_verdict": faithfulness_verdict(_num(cells.get("lime_faithfulness"))),
        "x": cells["x"], "y": cells["y"], "w": cells["w"], "h": cells["h"],
        "probs": {c: cells[f"p_{c}"] for c in CLASSES},
        "face_jpg": picture(colour, 90), "crop_jpg": picture(square(faces.crops[i], 112), 90),
        "heatmap_img": heatmap, "lime_img": lime, "lime_label": cells.get("lime_label", ""),
        "lime_score": _num(cells.get("lime_score")), "score": _num(cells["score"]),
        "lime_faithfulness": _num(cells.get("lime_faithfulness")), "person": "",
    }


def _num(v):
    try:
        return None if v is None or math.isnan(float(v)) else float(v)
    except (TypeError, ValueError):
        return None


STATUS_TEXT = {"ok": "faces found", "no_faces": "no face found", "failed": "failed", "skipped": "skipped"}


def _card(rec) -> dict:
    """One gallery card (an ``ImageResult``): its plain thumbnail, over which the report draws each face's
    box and tag as HTML (from x/y/w/h and the photo's size, so a script can keep tags off every face), and
    each face."""
    size = (rec.width, rec.height) if rec.width and rec.height else None
    faces = [_face_view(rec.faces, i, size) for i in range(len(rec))] if rec.status == STATUS_OK else []
    thumb = picture(rec.thumbnail, 85) if rec.thumbnail is not None else ""
    return {
        "path": rec.path, "name": os.path.basename(rec.path), "status": rec.status,
        "status_text": STATUS_TEXT.get(rec.status, rec.status) + (f" ({len(faces)})" if faces else ""),
        "reason": rec.reason, "thumbnail": thumb,
        "size": f"{int(rec.width)}×{int(rec.height)} px" if rec.width else "", "faces": faces,
        "tags": sorted({f["label"] for f in faces}) if faces else [rec.status],
    }


def _statistics(st) -> dict:
    n = st.faces
    folders = []
    for folder in sorted(st.folders):
        f = st.folders[folder]
        shares = {c: float(f["labels"][k] / f["faces"]) if f["faces"] else 0.0 for k, c in enumerate(CLASSES)}
        folders.append({"folder": folder, "images": f["images"], "faces": f["faces"], "shares": shares,
                        "dominant": max(shares, key=shares.get) if f["faces"] else ""})
    return {
        "distribution": {c: float(st.label_counts[k] / n) if n else 0.0 for k, c in enumerate(CLASSES)},
        "mean_probs": {c: float(st.prob_sums[k] / n) if n else 0.0 for k, c in enumerate(CLASSES)},
        "uncertain_shares": {c: float(st.uncertain_counts[k] / n) if n else 0.0 for k, c in enumerate(CLASSES)},
        "uncertain_total": int(st.uncertain_counts.sum()),
        "folders": folders, "problems": st.problems, "problems_total": st.problems_total,
        "faithfulness": st.faithfulness_summary(),
    }


def run_context(result) -> dict:
    """Everything run.html.j2 shows about the photos, from an ``analysis.RunResult``: statistics of every
    input, and the gallery's cards (every image of a small run, a bounded choice of a big one). The
    filters count faces (a photo shows when any of its faces matches)."""
    cards = [_card(rec) for rec in result.gallery.cards() if rec.status in (STATUS_OK, STATUS_NO_FACES)]
    faces = [f for card in cards for f in card["faces"]]
    a = result.info
    return dict(
        _statistics(result.stats), summary=summary(result), inputs=a.get("inputs", []), cards=cards,
        filter_counts={c: sum(f["label"] == c for f in faces) for c in CLASSES},
        no_faces_count=sum(not card["faces"] for card in cards), uncertain_count=sum(f["uncertain"] for f in faces),
        glossary=GLOSSARY, mixed=MIXED, complete=result.gallery.keep_all, gallery_size=a.get("gallery"),
        settings={k: a.get(k) for k in ("detector", "detector_options", "explain", "lime_samples", "jobs", "backend")},
    )


def write_run_report(result, out: str | os.PathLike, timeline: str = "", moments: str = "") -> Path:
    """The report of ``batchemo run`` (a ``pipeline.run.RunResult``, its videos' ``pictures`` decoded),
    photos and videos in one file: summary, statistics, people, failures, the photo gallery, and per video
    its filmstrip and per person a chart and their moments (report.video's sections). ``timeline`` and
    ``moments``: the tables' names, to point to. Embeddings never reach the report.
    """
    from .video import video_context

    ctx = base_context(result.info.get("model", {}), result.info.get("model_file"))
    ctx.update(run_context(result))
    opts = result.options
    ctx["people_on"] = bool(opts is None or opts.people)
    ctx["people"] = [_person_view(p) for p in _people(result)]
    names = {(r.source, r.face_index): r.person for r in result.faces if r.person}
    for c in ctx["cards"]:
        for f in c["faces"]:
            f["person"] = names.get((c["path"], f["face_index"]), "")
    ctx["person_counts"] = {p["name"]: sum(f["person"] == p["name"] for c in ctx["cards"] for f in c["faces"])
                            for p in ctx["people"]}
    ctx["people_total"] = max(int(result.info.get("people") or 0), len(ctx["people"]))
    ctx["videos"] = [video_context(v, i, timeline, moments) for i, v in enumerate(result.videos, 1)]
    ctx.update(timeline=timeline, classes=list(CLASSES), clock=fmt_time, video_settings=_video_settings(result),
               what=_what(ctx["summary"]))
    return render("run.html.j2", ctx, out)


def _what(s: dict) -> str:
    """"9 images and 2 videos", "1 video", "0 images": what the report is about, for its heading."""
    parts = []
    if s["images"] or not s["videos"]:
        parts.append(f"{s['images']} image{'s' if s['images'] != 1 else ''}")
    if s["videos"]:
        parts.append(f"{s['videos']} video{'s' if s['videos'] != 1 else ''}")
    return " and ".join(parts)


def _video_settings(result) -> dict:
    first = next((v.info for v in result.videos if v.info.get("model")), {})
    return {k: first.get(k) for k in ("fps", "smooth", "detector", "detector_options", "explain_keyframes",
                                      "lime_samples")}


def _people(result) -> list[dict]:
    """The People section's people (``people.summarise``), each example a FaceRef or a video keyframe."""
    from ..people.refs import summarise

    opts = result.options
    if opts is not None and not opts.people:
        return []
    people = summarise(result.refs)
    kept = {rec.path: rec for rec in result.gallery.cards()}
    for p in people:
        for key in ("typical", "most", "least"):
            p[key] = _example(p[key], kept)
        if p["typical"] is None and p["appearances"]:  # seen in videos only: their most confident moment
            p["typical"] = _video_example(result.videos, p["appearances"][0])
        p["appearances"] = [{"video": os.path.basename(t.source), "face_id": t.track, "time": t.time,
                             "samples": int(t.weight), "label": t.label,
                             "anchor": _track_anchor(result.videos, t)} for t in p["appearances"]]
    return people


def _example(ref, kept: dict) -> dict | None:
    """A person's example face: colour from the gallery when its photo was kept, else the 48x48 crop and
    heatmap the FaceRef carries (no second pass over the photos)."""
    from ..sources.images import square
    from .pictures import heatmap_image

    if ref is None:
        return None
    rec = kept.get(ref.source)
    if rec is not None and rec.faces is not None and rec.faces.colour is not None and ref.face_index < len(rec):
        face = rec.faces.colour[ref.face_index]
    else:
        face = square(ref.crop, 112) if ref.crop is not None else None
    heat = (None if ref.heatmap is None or ref.crop is None
            else heatmap_image(ref.crop, ref.heatmap.astype(np.float32), 112))
    return {"source": ref.source, "label": ref.label, "confidence": ref.confidence,
            "face_jpg": picture(face, 90), "heatmap_img": picture(heat, 88)}


def _video_example(videos, track) -> dict | None:
    moments = [k for v in videos if v.info["video"] == track.source and v.pictures is not None
               for k in v.pictures.keyframes if k.moment.face_id == track.track]
    if not moments:
        return None
    best = max(moments, key=lambda k: k.moment.confidence)
    return {"source": track.source, "label": best.label, "confidence": best.moment.confidence,
            "face_jpg": picture(best.face, 90), "heatmap_img": ""}


def _track_anchor(videos, track) -> str:
    """The person's section of the video the track is in."""
    for i, v in enumerate(videos, 1):
        if v.info["video"] == track.source:
            key = track.person or f"face #{track.track}"
            return f"video-{i}-{key.replace(' ', '-').replace('#', '')}"
    return ""


def _person_view(p: dict) -> dict:
    def example(e):
        if not e:
            return None
        return dict(e, name=os.path.basename(e["source"]), uncertain=uncertain_label(e["confidence"]))

    return dict(p, typical=example(p["typical"]), most=example(p["most"]), least=example(p["least"]))
