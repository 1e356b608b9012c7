"""Where the time of `batchemo run` goes per photo (warm, one process, explanations and people on).

Each stage is timed by calling the function the engine calls, on the same photos in the same order:
decode, detect, align, classify, embed, explain (LIME's perturbations and fits, no curves), faithfulness
(the deletion/insertion curves: an explanation with them minus one without), cluster (people.assign over
the run), report (the HTML of the run, people and gallery included). Used by runtime_speed.py --profile.
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path


def _clock(totals: dict, stage: str, fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    totals[stage] += time.perf_counter() - t
    return out


def _per_photo(paths: list[Path], model, detector, totals: dict) -> int:
    """Decode to faithfulness for every photo; returns the number of faces."""
    import numpy as np

    from batchemo.explain.lime import LimeSettings, explain_face
    from batchemo.faces.align import align_face
    from batchemo.faces.detect import to_gray
    from batchemo.faces.embed import embed
    from batchemo.sources.images import read_image

    plain, faithful, faces = LimeSettings(faithfulness=False), LimeSettings(), 0
    for p in paths:
        rgb, scale = _clock(totals, "decode", read_image, str(p))
        found = _clock(totals, "detect", detector.detect, rgb)
        if not found:
            continue
        crops = _clock(totals, "align", lambda: np.stack([align_face(to_gray(rgb), d) for d in found]))
        probs = _clock(totals, "classify", model.predict, crops)
        boxes = np.array([(d.box.x, d.box.y, d.box.w, d.box.h) for d in found])
        marks = np.stack([d.landmarks for d in found]) if all(d.landmarks is not None for d in found) else None
        _clock(totals, "embed", embed, rgb, boxes, marks, scale)
        for crop, k in zip(crops, probs.argmax(1)):
            _clock(totals, "explain", explain_face, model, crop, None, plain, int(k))
            _clock(totals, "faithfulness", explain_face, model, crop, None, faithful, int(k))
        faces += len(found)
    totals["faithfulness"] -= totals["explain"]  # an explanation with curves minus one without
    return faces


def profile(folder: Path) -> None:
    import tempfile

    from batchemo import run
    from batchemo.emotions.model import load_model
    from batchemo.faces.detect import DEFAULT_DETECTOR, make_detector
    from batchemo.people.refs import assign
    from batchemo.report.run import write_run_report

    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    model, detector, totals = load_model(), make_detector(DEFAULT_DETECTOR), defaultdict(float)
    _per_photo(paths[:1], model, detector, defaultdict(float))  # warm: interpreters, dlib models
    faces = _per_photo(paths, model, detector, totals)
    result = run(folder, progress=False)  # the run names its people; they are named again here, timed
    _clock(totals, "cluster", assign, result.faces)
    with tempfile.TemporaryDirectory() as tmp:
        _clock(totals, "report", write_run_report, result, Path(tmp) / "r.html")
    n = len(paths)
    total = sum(totals.values())
    print(f"\nwhere the time goes per photo ({n} photos, {faces} faces, {model.runtime} runtime, warm)")
    print(f"{'stage':13s} {'ms/photo':>9s} {'share':>6s}")
    for stage in ("decode", "detect", "align", "classify", "embed", "cluster", "explain", "faithfulness", "report"):
        print(f"{stage:13s} {1000 * totals[stage] / n:9.1f} {totals[stage] / total:6.1%}")
    print(f"{'total':13s} {1000 * total / n:9.1f}")
