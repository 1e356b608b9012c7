"""The video report: per video a filmstrip and, per person, their emotion over time, the share of time per
emotion and the moments worth seeing (each with its frame, its face and, for the first, LIME's heatmap),
in the words and marks of the photo cards. Same look as ``batchemo run``'s (extends base.html.j2).

Its size does not grow with a video's length: charts summarise (the timeline binned to at most
``CHART_BINS`` points), at most ``PEOPLE_SHOWN`` people and ``TRACKS_LISTED`` tracks are shown per video,
and the pictures are the fixed budget ``pipeline.pictures`` decoded; the report says what it left out and
where the full timeline is. Nothing here runs a model; charts are matplotlib PNGs drawn without pyplot
(no global state, safe in any thread).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.records import CLASSES
from ..explain.faithfulness import faithfulness_verdict
from ..people.refs import headline
from ..pipeline.pictures import shown_people
from . import base_context, data_uri, explanation_pictures, picture, render, shot_picture
from .glossary import GLOSSARY
from .pictures import EMOTION_COLOURS

STATUS_TEXT = {"ok": "faces tracked", "no_faces": "no face found", "partial": "partly readable", "failed": "failed"}
#: Points per chart and tracks listed per video (and pipeline.pictures.PEOPLE_SHOWN people): what keeps a
#: video's section the same size whatever its length (the timeline table has every sampled frame).
CHART_BINS, TRACKS_LISTED = 160, 20


def video_context(analysis, index: int, timeline: str = "", moments: str = "") -> dict:
    """Everything a video's section shows, from a ``pipeline.video.VideoAnalysis`` (its people named, its
    ``pictures`` decoded). ``timeline``/``moments``: the tables' file names, where the report points to."""
    a = analysis.info
    duration = float(a.get("duration") or 0.0)
    min_samples = int(a.get("min_face_samples") or 3)
    shown_keys = shown_people(analysis)
    series = person_series(analysis, duration, charted=shown_keys)
    memo: dict = {}
    pics = analysis.pictures
    people = sorted(series.values(), key=lambda p: -p["samples"])
    shown = [p for p in people if p["key"] in shown_keys]
    for p in shown:
        p["chart"] = data_uri(emotion_chart(p["bins"], p["counts"], duration))
        p["moments"] = [_keyframe_view(k, memo) for k in (pics.keyframes if pics else []) if _key(k) == p["key"]]
        p["dominant"] = headline(p["shares"])
    tracks = sorted(analysis.tracks, key=lambda t: -t.weight)
    status = a.get("status", "failed")
    return {
        "anchor": f"video-{index}", "name": a.get("name") or os.path.basename(str(a.get("video", ""))),
        "path": str(a.get("video", "")), "status": status, "status_text": STATUS_TEXT.get(status, status),
        "reason": a.get("reason") or "", "warnings": list(a.get("warnings", [])), "resumed_at": a.get("resumed_at"),
        "duration": duration, "width": a.get("width") or 0, "height": a.get("height") or 0,
        "fps_nominal": a.get("fps_nominal") or 0.0, "frames_decoded": a.get("frames_decoded") or 0,
        "frames_sampled": a.get("frames_sampled") or 0, "sample_period": float(a.get("sample_period") or 0.0),
        "seconds": a.get("seconds") or 0.0, "rows": analysis.rows, "people": shown,
        "people_total": len(people), "unnamed": sum(p["key"].startswith("face #") for p in people),
        "tracks": [_track_view(t) for t in tracks[:TRACKS_LISTED]],
        "tracks_total": len(tracks), "min_face_samples": min_samples,
        "filmstrip": [{"time": s.time, "frame": s.frame, "faces": s.faces, "jpg": shot_picture(s.shot, memo),
                       "marks": _marks(s.shot)} for s in (pics.filmstrip if pics else [])],
        "moments_found": pics.moments_found if pics else len(analysis.moments),
        "moments_shown": sum(k.moment.kind != "typical" for k in pics.keyframes) if pics else 0,
        "timeline": timeline, "moments_file": moments,
        "main": _main_emotions(people),
    }


def _key(k) -> str:
    """Who a keyframe is about: its person, or its track when it has none."""
    return k.person or f"face #{k.moment.face_id}"


def person_series(analysis, duration: float, bins: int = CHART_BINS, charted: set[str] | None = None
                  ) -> dict[str, dict]:
    """Per person (a track without one: per track) of one video, from its timeline spool in one pass: the
    share of samples per smoothed label, the mean probabilities, samples, tracks and time span; for the
    people in ``charted`` (None: everyone) also the smoothed probabilities binned over the video's time
    (``bins`` points). Only the charted hold (bins, 7) arrays, so an hour's thousands of tracks cost little."""
    person_of = analysis.person_of()
    period = float(analysis.info.get("sample_period") or 0.0)
    if period > 0:  # no bin narrower than a sample: a chart's line joins its samples
        bins = max(1, min(bins, int(duration / period)))
    width = max(duration, 1e-6) / bins
    out: dict[str, dict] = {}
    for chunk in analysis.chunks():
        which = np.minimum((chunk.time / width).astype(int), bins - 1)
        for i in range(len(chunk)):
            fid = int(chunk.face_id[i])
            key = person_of.get(fid) or f"face #{fid}"
            p = out.get(key) or out.setdefault(key, _series(key, float(chunk.time[i]), bins, charted))
            p["sum"] += chunk.smoothed[i]
            p["labels"][int(np.argmax(chunk.smoothed[i]))] += 1
            p["samples"] += 1
            p["tracks"].add(fid)
            p["first"], p["last"] = min(p["first"], float(chunk.time[i])), max(p["last"], float(chunk.time[i]))
            if p["bins"] is not None:
                p["bins"][which[i]] += chunk.smoothed[i]
                p["counts"][which[i]] += 1
    for p in out.values():
        n = max(1, p["samples"])
        p["shares"] = {c: float(p["labels"][k] / n) for k, c in enumerate(CLASSES)}
        p["mean"] = {c: float(p["sum"][k] / n) for k, c in enumerate(CLASSES)}
        p["on_screen"] = p["samples"] * period
        p["tracks"] = len(p["tracks"])
    return out


def _series(key: str, first: float, bins: int, charted: set[str] | None) -> dict:
    """A person's empty sums for ``person_series``; chart bins only for the charted."""
    chart = charted is None or key in charted
    return {"key": key, "name": key, "bins": np.zeros((bins, len(CLASSES))) if chart else None,
            "counts": np.zeros(bins) if chart else None, "sum": np.zeros(len(CLASSES)),
            "labels": np.zeros(len(CLASSES)), "samples": 0, "tracks": set(), "first": first, "last": 0.0}


def emotion_chart(bins: np.ndarray, counts: np.ndarray, duration: float) -> bytes:
    """PNG: one person's 7 smoothed probabilities over the video (the mean per bin; gaps where absent),
    with the dominant emotion of each bin as a band on top."""
    from matplotlib.figure import Figure

    colours = {c: tuple(v / 255 for v in rgb) for c, rgb in EMOTION_COLOURS.items()}
    n = len(counts)
    t = (np.arange(n) + 0.5) * max(duration, 1e-6) / n
    mean = np.where(counts[:, None] > 0, bins / np.maximum(counts, 1)[:, None], np.nan)
    fig = Figure(figsize=(11.0, 2.5), dpi=90)
    band, ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 6], "hspace": 0.08})
    fig.subplots_adjust(left=0.05, right=0.98, top=0.97, bottom=0.17)
    step = max(duration, 1e-6) / n
    for i in np.flatnonzero(counts > 0):
        band.axvspan(i * step, (i + 1) * step, color=colours[CLASSES[int(np.nanargmax(mean[i]))]], lw=0)
    band.set_yticks([])
    band.set_ylim(0, 1)
    for s in ("top", "right", "left", "bottom"):
        band.spines[s].set_visible(False)
    for k, c in enumerate(CLASSES):
        ax.plot(t, mean[:, k], color=colours[c], lw=1.6, label=c, marker="o" if (counts > 0).sum() < 30 else None,
                ms=2.5)
    ax.set_xlim(0, max(duration, 1e-3))
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


def _keyframe_view(k, memo: dict) -> dict:
    """A moment as the photo cards show a face (``macros.face_block``), with its frame and what it is."""
    heatmap, lime = explanation_pictures(k.crop, k.explanation)
    m = k.moment
    exp = k.explanation
    faith = None if exp is None or exp.faithfulness != exp.faithfulness else float(exp.faithfulness)
    return {
        # the label's probability in the frame shown (for a moment found by this version, its own confidence)
        "face_index": m.face_id, "label": m.label, "confidence": k.probabilities.get(m.label, m.confidence),
        "uncertain": k.uncertain,
        "person": k.person, "kind": m.kind, "previous": m.previous, "held": m.held, "time": m.time,
        "frame": m.frame, "x": m.box[0], "y": m.box[1], "w": m.box[2], "h": m.box[3], "score": None,
        "probs": k.probabilities, "face_jpg": picture(k.face, 90), "crop_jpg": picture(k.crop, 90),
        "heatmap_img": heatmap, "lime_img": lime, "lime_label": exp.label if exp else "",
        "lime_score": None if exp is None else float(exp.score), "lime_faithfulness": faith,
        "faithfulness_verdict": faithfulness_verdict(faith), "frame_jpg": shot_picture(k.shot, memo),
        "frame_marks": _marks(k.shot),
        "unreadable": "",
    }


def _marks(shot) -> list[dict]:
    """The faces boxed on a frame, listed beside it (a crowded frame's tags shrink to their number)."""
    from ..emotions.doubt import uncertain_label

    return [] if shot is None else [{"id": idx, "label": label, "confidence": conf, "uncertain": uncertain_label(conf)}
                                    for _, label, conf, idx in sorted(shot.marks, key=lambda m: m[3])]


def _track_view(t) -> dict:
    return {"id": t.track, "person": t.person, "first": t.time, "last": t.end, "samples": int(t.weight),
            "label": t.label}


def _main_emotions(people: list[dict]) -> dict[str, float]:
    """Share of all sampled faces per smoothed label, over the video's people."""
    total = sum(p["samples"] for p in people)
    return {c: sum(p["shares"][c] * p["samples"] for p in people) / total for c in CLASSES} if total else {}


def write_video_report(results: Sequence, out: str | os.PathLike, timeline: str = "", moments: str = "") -> Path:
    """The report of ``batchemo video`` (and the video sections of ``batchemo run``'s), written atomically,
    from ``pipeline.video.VideoAnalysis`` records with their people named and ``pictures`` decoded.
    ``timeline``/``moments``: the tables written beside it, named where the report leaves rows out."""
    videos = [video_context(r, i, os.path.basename(timeline), os.path.basename(moments))
              for i, r in enumerate(results, 1)]
    first = next((r.info for r in results if r.info.get("model")), {})
    ctx = base_context(first.get("model", {}))
    ctx["glossary"] = {k: v for k, v in GLOSSARY.items() if k in (
        "LIME", "heatmap", "superpixels", "keyframe", "smoothed", "face_id", "confidence", "uncertain",
        "faithfulness", "LIME fit R²", "moment")}
    done = [v for v in videos if v["status"] != "failed"]
    ctx.update(
        videos=videos,
        summary={
            "videos": len(videos), "with_faces": sum(1 for v in videos if v["tracks"]),
            "faces": sum(v["tracks_total"] for v in videos), "failed": len(videos) - len(done),
            "duration": sum(v["duration"] for v in done), "seconds": sum(v["seconds"] for v in videos),
        },
        settings={k: first.get(k) for k in ("fps", "smooth", "detector", "detector_options", "explain_keyframes",
                                             "lime_samples")},
        classes=list(CLASSES), clock=fmt_time,
    )
    return render("video.html.j2", ctx, out)


def fmt_time(seconds: float) -> str:
    """0:07.5 / 1:02:03 style for captions."""
    seconds = max(0.0, float(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h else f"{int(m)}:{s:04.1f}"
