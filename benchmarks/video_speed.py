"""Wall time to produce the emotion timeline of the Hamilton clip, sampled at 2 fps and at every frame,
for the default detector (yunet, searching 6 frames a second and following faces between) and hog, side
by side in one process.

    python benchmarks/video_speed.py [--video ../shared/media/videos/short_hamilton_clip.mp4] [--model M.keras]
        [--detectors auto,hog] [--repeat 3] [--detect-fps 6]

No explanations (LIME off), people on (identity embeddings), otherwise ``batchemo video``'s defaults.
The model is loaded and its compiled forward pass traced once before timing, as in any run past its first
video; the load time is printed separately. Real-time factor = video duration / wall time: above 1 is
faster than real time. 'faces/frame' is timeline rows per sampled frame: following must not lose faces;
'ids' the number of face ids (tracks). 'cpu s' is the process's CPU time (all threads): on a busy shared
machine it says more than the wall time about what the work costs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VIDEO = (Path(os.environ.get("BATCHEMO_SHARED", ROOT.parent / "shared"))
                 / "media" / "videos" / "short_hamilton_clip.mp4")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="video to time (default: %(default)s)")
    ap.add_argument("--model", help="model file (.keras); default: the shipped model")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per setting; the best is kept (default: 3)")
    ap.add_argument("--detectors", default="auto,hog", help="detectors, side by side (default: %(default)s)")
    ap.add_argument("--detect-fps", type=float, default=None, help="full searches per second of video "
                    "(default: batchemo's DETECT_FPS; 0: every sampled frame)")
    a = ap.parse_args(argv)
    if not a.video.exists():
        print(f"video_speed: {a.video}: no such file (the project's ../shared data)", file=sys.stderr)
        return 2
    import numpy as np

    from batchemo.emotions.model import DEFAULT_MODEL_PATH, load_model
    from batchemo.outputs.frames import analyze_video

    if a.model is None and not DEFAULT_MODEL_PATH.exists():
        print(f"video_speed: the shipped model {DEFAULT_MODEL_PATH} is missing: pass --model", file=sys.stderr)
        return 2
    t = time.perf_counter()
    model = load_model(a.model)
    model.predict(np.zeros((4, 48, 48), np.uint8))
    load = time.perf_counter() - t
    print(f"video: {a.video} | model: {model.name} | cpus: {os.cpu_count()} | load + trace: {load:.1f} s")
    print(f"{'detector':<9} {'sampling':<12} {'frames':>7} {'rows':>5} {'faces/frame':>11} {'ids':>4} {'wall s':>7} "
          f"{'video s':>8} {'x real time':>12} {'frames/s':>9} {'cpu s':>6}")
    options = {} if a.detect_fps is None else {"detect_fps": a.detect_fps}
    for detector in a.detectors.split(","):
        for fps, name in ((2.0, "2 fps"), (0.0, "every frame")):
            best = cpu = None
            for _ in range(max(1, a.repeat)):
                t, c = time.perf_counter(), time.process_time()
                df = analyze_video(a.video, model, fps=fps, detector=detector, explain_keyframes=0,
                                   progress=False, **options)
                wall, used = time.perf_counter() - t, time.process_time() - c
                best, cpu = (wall, used) if best is None or wall < best else (best, cpu)
            at = df.attrs
            n = at["frames_sampled"]
            print(f"{at['detector']:<9} {name:<12} {n:>7} {len(df):>5} {len(df) / max(n, 1):>11.2f} "
                  f"{df['face_id'].nunique():>4} {best:>7.2f} {at['duration']:>8.2f} "
                  f"{at['duration'] / best:>12.2f} {n / best:>9.1f} {cpu:>6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
