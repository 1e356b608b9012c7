"""Label changes per minute against lag for the timeline's smoothing time constant, on the shared clip.

    python benchmarks/smoothing.py [--video ../shared/media/videos/short_hamilton_clip.mp4] [--fps 0 2]
        [--taus 0,0.25,0.5,0.75,1,1.5,2,3]

The clip is analysed once per sampling rate (default detector, no explanations, people off); each time
constant then smooths the same raw probabilities (track.smooth_timeline). 'changes/min' counts a face's
label changing between consecutive samples, per minute of face time (summed over faces with >= 3 samples).
'lag s' is how far the smoothed probabilities trail the raw ones: the shift (in samples, times the sample
period) that best lines the smoothed series up with the raw one (least squares over all faces).
'agree' is the share of samples whose smoothed label equals the raw label: how much of what the CNN said
is still shown. batchemo video's default (video.SMOOTH) was chosen from this table.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VIDEO = (Path(os.environ.get("BATCHEMO_SHARED", ROOT.parent / "shared"))
                 / "media" / "videos" / "short_hamilton_clip.mp4")


def measure(df, tau: float) -> tuple[float, float, float]:
    """(label changes per minute of face time, lag in seconds, share of samples agreeing with the raw label)."""
    from batchemo.core.records import PROB_COLUMNS
    from batchemo.faces.track import SMOOTH_COLUMNS, smooth_timeline

    df = smooth_timeline(df.copy(), tau)
    changes = seconds = 0.0
    errs: dict[int, float] = {}
    periods = []
    for _, face in df.groupby("face_id"):
        face = face.sort_values("time")
        if len(face) < 3:
            continue
        labels = face["label_smoothed"].to_numpy()
        changes += float((labels[1:] != labels[:-1]).sum())
        t = face["time"].to_numpy()
        seconds += t[-1] - t[0]
        periods.append(np.median(np.diff(t)))
        raw, sm = face[PROB_COLUMNS].to_numpy(), face[SMOOTH_COLUMNS].to_numpy()
        for k in range(0, min(len(face) - 1, 60)):
            errs[k] = errs.get(k, 0.0) + float(((sm[k:] - raw[: len(raw) - k]) ** 2).mean())
    lag = min(errs, key=errs.get) * float(np.median(periods)) if errs else 0.0
    agree = float((df["label_smoothed"] == df["label"]).mean()) if len(df) else 1.0
    return 60 * changes / max(seconds, 1e-9), lag, agree


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--fps", type=float, nargs="+", default=[0.0, 2.0], help="sampling rates (0: every frame)")
    ap.add_argument("--taus", default="0,0.25,0.5,0.75,1,1.5,2,3", help="time constants, seconds")
    a = ap.parse_args(argv)
    if not a.video.exists():
        print(f"smoothing: {a.video}: no such file (the project's ../shared data)", file=sys.stderr)
        return 2
    from batchemo.pipeline.video import analyze_video

    taus = [float(x) for x in a.taus.split(",")]
    print(f"video: {a.video}")
    print(f"{'sampling':<12} {'tau s':>6} {'changes/min':>12} {'lag s':>6} {'agree':>6}")
    for fps in a.fps:
        df = analyze_video(a.video, fps=fps, smooth=None, explain_keyframes=0, progress=False, people=False)
        for tau in taus:
            per_min, lag, agree = measure(df, tau)
            name = "every frame" if fps == 0 else f"{fps:g} fps"
            print(f"{name:<12} {tau:>6.2f} {per_min:>12.1f} {lag:>6.2f} {agree:>6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
