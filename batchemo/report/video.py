"""The video report: per video a filmstrip and, per face, an emotion timeline chart, the dominant emotion per
segment, a summary, keyframes and LIME heatmaps. Same look as ``batchemo run``'s (extends base.html.j2).

Everything is computed from the ``video.VideoAnalysis`` records ``video.analyze_videos`` returns; nothing
here runs a model.
Charts are matplotlib PNGs drawn without pyplot (no global state, safe in any thread).
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.records import CLASSES
from ..people.refs import headline
from . import base_context, data_uri, explanation_pictures, picture, render, shot_picture
from .glossary import GLOSSARY
from .pictures import EMOTION_COLOURS

STATUS_TEXT = {"ok": "faces tracked", "no_faces": "no face found", "partial": "partly readable", "failed": "failed"}
_NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def segment_length(duration: float, sample_period: float, max_segments: int = 20) -> float:
    """A round segment length (1, 2, 5, 10 s ...) giving at most ``max_segments`` segments, each holding
    at least two samples, so that 'dominant emotion' is about a moment, not a single noisy frame."""
    for step in _NICE_STEPS:
        if step * 1.01 >= 2 * sample_period and duration / step <= max_segments:
            return float(step)
    return float(math.ceil(duration / max_segments / 3600) * 3600) or 3600.0


def dominant_segments(face, seg: float, n_segments: int, col_prefix: str = "ps_") -> list[str]:
    """Per segment, the emotion with the highest mean probability while the face was there ('' if absent)."""
    out = [""] * n_segments
    if not len(face):
        return out
    probs = face[[f"{col_prefix}{c}" for c in CLASSES]].to_numpy(np.float64)
    which = np.minimum((face["time"].to_numpy(np.float64) // seg).astype(int), n_segments - 1)
    for s in np.unique(which):
        out[int(s)] = CLASSES[int(probs[which == s].mean(0).argmax())]
    return out


def timeline_chart(face, duration: float, seg: float, segments: Sequence[str], gap: float, smoothed: bool) -> bytes:
    """PNG: the 7 probabilities of one face over the video's time axis, a band of dominant emotions on top.

    Lines break where the face was off screen for more than ``gap`` seconds; with smoothing, the smoothed
    probabilities are the lines and the raw ones a faint trace behind them.
    """
    from matplotlib.figure import Figure

    colours = {c: tuple(v / 255 for v in rgb) for c, rgb in EMOTION_COLOURS.items()}
    fig = Figure(figsize=(11.0, 2.7), dpi=100)
    band, ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 6], "hspace": 0.08})
    fig.subplots_adjust(left=0.05, right=0.995, top=0.97, bottom=0.16)
    end = max(duration, float(face["time"].max()) if len(face) else 0.0, 1e-3)
    for i, label in enumerate(segments):
        if label:
            x0, x1 = i * seg, min((i + 1) * seg, end)
            band.axvspan(x0, x1, color=colours[label], lw=0)
            if (x1 - x0) / end > 0.045:
                band.text((x0 + x1) / 2, 0.5, label, ha="center", va="center", fontsize=7.5, color="white",
                          clip_on=True)
    band.set_yticks([])
    band.set_ylim(0, 1)
    for s in ("top", "right", "left", "bottom"):
        band.spines[s].set_visible(False)
    t = face["time"].to_numpy(np.float64)
    breaks = np.flatnonzero(np.diff(t) > gap) + 1

    def broken(y):
        return np.insert(t, breaks, np.nan), np.insert(y, breaks, np.nan)

    for c in CLASSES:
        if smoothed:
            ax.plot(*broken(face[f"p_{c}"].to_numpy(np.float64)), color=colours[c], lw=0.8, alpha=0.25)
        ax.plot(*broken(face[f"ps_{c}"].to_numpy(np.float64)), color=colours[c], lw=1.7, label=c,
                marker="o" if len(t) < 40 else None, ms=2.5)
    ax.set_xlim(0, end)
    ax.set_ylim(0, 1)
    ax.set_yticks([0, 0.5, 1])
    ax.set_ylabel("probability", fontsize=8)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#e3e6ec", lw=0.6)
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _face_context(fid, face, a: dict, keyframes: list, layout: dict, charts: bool) -> dict:
    """One tracked face's section. ``layout``: seg (segment length, s), n_seg, memo (shot pictures already
    encoded), limit (keyframes shown at most, peaks of its main emotions first; None: all)."""
    seg, n_seg, memo = layout["seg"], layout["n_seg"], layout["memo"]
    period = float(a.get("sample_period") or 0.0)
    col = "label_smoothed"
    n = len(face)
    shares = {c: float((face[col] == c).mean()) for c in CLASSES}
    segments = dominant_segments(face, seg, n_seg)
    gap = max(1.0, 3 * period)
    kfs = [k for k in keyframes if k.face_id == fid]
    if layout.get("limit") is not None:
        kfs = sorted(kfs, key=lambda k: (k.kind != "peak", -shares.get(k.label, 0.0), -k.confidence))
        kfs = [k for k in kfs if k.explanation is not None] + [k for k in kfs if k.explanation is None]
        kfs = kfs[: layout["limit"]]
    kfs.sort(key=lambda k: k.time)
    best = max((k for k in kfs if k.kind == "peak"), key=lambda k: k.confidence, default=None)
    return {
        "id": int(fid), "person": str(face["person"].iloc[0]) if "person" in face and n else "", "samples": n,
        "first": float(face["time"].min()), "last": float(face["time"].max()),
        "on_screen": n * period, "shares": shares, "mean_probs": {c: float(face[f"ps_{c}"].mean()) for c in CLASSES},
        "dominant": max(shares, key=shares.get),
        "thumb": picture(best.face, 90) if best else "",
        "segments": [{"start": i * seg, "end": (i + 1) * seg, "label": lb} for i, lb in enumerate(segments)],
        "chart": data_uri(timeline_chart(face, float(a.get("duration") or 0), seg, segments, gap,
                                         bool(a.get("smooth")))) if charts else "",
        "keyframes": [{
            "time": k.time, "frame": k.frame, "label": k.label, "confidence": k.confidence, "kind": k.kind,
            "frame_jpg": shot_picture(k.shot, memo), "face_jpg": picture(k.face, 90),
        } for k in kfs],
        "explained": [_explained(k) for k in sorted(
            (k for k in kfs if k.explanation is not None),
            key=lambda k: (k.kind != "peak", -shares.get(k.label, 0.0), k.time))],
    }


def _explained(k) -> dict:
    heatmap, lime = explanation_pictures(k.crop, k.explanation)
    return {"time": k.time, "frame": k.frame, "label": k.label, "confidence": k.confidence,
            "face_jpg": picture(k.face, 90), "heatmap_img": heatmap, "lime_img": lime,
            "lime_score": k.lime_score, "lime_faithfulness": k.lime_faithfulness, "probs": k.probabilities}


def video_context(result, index: int, min_face_samples: int | None = None,
                  keyframes_per_face: int | None = None) -> dict:
    """Everything video.html.j2 (and the run report's video sections) show for one video (a
    ``video.VideoAnalysis``); ``keyframes_per_face`` bounds the keyframes per face (None: all kept)."""
    df, a = result.timeline, result.info
    if min_face_samples is None:
        min_face_samples = int(a.get("min_face_samples") or 3)
    duration = float(a.get("duration") or 0.0)
    period = float(a.get("sample_period") or 0.0)
    seg = segment_length(duration, period)
    n_seg = max(1, math.ceil(duration / seg - 1e-9)) if duration else 1
    faces, brief = [], []
    keyframes = list(result.keyframes)
    memo: dict = {}
    if len(df):
        for fid, face in df.groupby("face_id", sort=True):
            face = face.sort_values("time")
            long_enough = len(face) >= min_face_samples
            layout = {"seg": seg, "n_seg": n_seg, "memo": memo, "limit": keyframes_per_face}
            ctx = _face_context(fid, face, a, keyframes, layout, long_enough)
            (faces if long_enough else brief).append(ctx)
    faces.sort(key=lambda f: -f["samples"])
    status = a.get("status", "failed")
    return {
        "anchor": f"video-{index}", "name": a.get("name") or os.path.basename(str(a.get("video", ""))),
        "path": str(a.get("video", "")), "status": status, "status_text": STATUS_TEXT.get(status, status),
        "reason": a.get("reason") or "", "warnings": list(a.get("warnings", [])),
        "duration": duration, "width": a.get("width") or 0, "height": a.get("height") or 0,
        "fps_nominal": a.get("fps_nominal") or 0.0, "frames_decoded": a.get("frames_decoded") or 0,
        "frames_sampled": a.get("frames_sampled") or 0, "sample_period": period, "seconds": a.get("seconds") or 0.0,
        "rows": len(df), "segment": seg, "faces": faces, "brief": brief, "min_face_samples": min_face_samples,
        "filmstrip": [{"time": s.time, "frame": s.frame, "faces": s.faces, "jpg": shot_picture(s.shot, memo)}
                      for s in result.filmstrip],
    }


def write_video_report(results: Sequence, out: str | os.PathLike, min_face_samples: int | None = None) -> Path:
    """The report of ``batchemo video`` (and of the videos of ``batchemo run``), written atomically.

    ``results``: the VideoAnalysis records of ``video.analyze_videos``. Faces seen in fewer than
    ``min_face_samples`` sampled frames (often detector false positives; default: the analysis' setting) are
    listed without a chart.
    """
    videos = [video_context(df, i, min_face_samples) for i, df in enumerate(results, 1)]
    first = next((r.info for r in results if r.info.get("model")), {})
    ctx = base_context(first.get("model", {}))
    ctx["glossary"] = {k: v for k, v in GLOSSARY.items()
                       if k in ("LIME", "heatmap", "keyframe", "smoothed", "face_id", "confidence", "detector score")}
    done = [v for v in videos if v["status"] != "failed"]
    ctx.update(
        videos=videos, people=people_context(videos),
        summary={
            "videos": len(videos), "with_faces": sum(1 for v in videos if v["faces"] or v["brief"]),
            "faces": sum(len(v["faces"]) + len(v["brief"]) for v in videos),
            "failed": len(videos) - len(done), "duration": sum(v["duration"] for v in done),
            "seconds": sum(v["seconds"] for v in videos),
        },
        settings={k: first.get(k) for k in ("fps", "smooth", "detector", "detector_options", "explain_keyframes",
                                             "lime_samples")},
        classes=list(CLASSES), clock=fmt_time,
    )
    return render("video.html.j2", ctx, out)


def people_context(videos: list[dict]) -> list[dict]:
    """Per person across the videos: their tracked faces, time on screen, emotion mix and mean probabilities
    (sample-weighted), and the headline emotion those give."""
    people: dict[str, dict] = {}
    for v in videos:
        for f in v["faces"] + v["brief"]:
            if not f["person"]:
                continue
            p = people.setdefault(f["person"], {"name": f["person"], "thumb": "", "samples": 0, "on_screen": 0.0,
                                                "mix": dict.fromkeys(CLASSES, 0.0), "mean": dict.fromkeys(CLASSES, 0.0),
                                                "faces": []})
            p["samples"] += f["samples"]
            p["on_screen"] += f["on_screen"]
            for c in CLASSES:
                p["mix"][c] += f["shares"][c] * f["samples"]
                p["mean"][c] += f["mean_probs"][c] * f["samples"]
            p["thumb"] = p["thumb"] or f["thumb"]
            p["faces"].append({"video": v["name"], "anchor": f"{v['anchor']}-face-{f['id']}" if f["chart"] else v["anchor"],
                               "id": f["id"]})
    for p in people.values():
        p["mix"] = {c: x / p["samples"] for c, x in p["mix"].items()} if p["samples"] else p["mix"]
        p["mean"] = {c: x / p["samples"] for c, x in p["mean"].items()} if p["samples"] else p["mean"]
        p["dominant"] = headline(p["mean"])  # the mean probability's top emotion, or "mixed" (confidence.py)
    return sorted(people.values(), key=lambda p: (-p["samples"], p["name"]))


def fmt_time(seconds: float) -> str:
    """0:07.5 / 1:02:03 style for captions."""
    seconds = max(0.0, float(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h else f"{int(m)}:{s:04.1f}"
