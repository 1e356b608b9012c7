"""Videos of any length: wall time, real-time factor, peak memory of the whole process tree and report size,
for videos of 1, 5, 20 and 60 minutes made from the shared clip, side by side.

    python benchmarks/video_length.py [--minutes 1 5 20 60] [-- extra video flags, e.g. --fps 4]

Each video is the shared clip (9.2 s, 640x360, 29.97 fps) joined to itself until it lasts that long, written
once with OpenCV (mp4v) into the temp folder and reused by later runs. Each is read by a fresh
``batchemo video VIDEO --csv t.csv --report r.html --moments m.csv`` at its defaults; memory is sampled
every 50 ms over the command and its child processes (``tree_memory.measure``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _common import SHARED
from tree_memory import measure


def build(minutes: float) -> Path:
    """The shared clip joined to itself for ``minutes`` (written once, then reused)."""
    import cv2

    out = Path(tempfile.gettempdir()) / "batchemo-bench-video" / f"clip-{minutes:g}min.mp4"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(SHARED / "media" / "videos" / "short_hamilton_clip.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr)
    cap.release()
    h, w = frames[0].shape[:2]
    tmp = out.with_suffix(".part.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(int(round(minutes * 60 * fps))):
        writer.write(frames[i % len(frames)])
    writer.release()
    os.replace(tmp, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 20, 60])
    ap.add_argument("extra", nargs="*", help="more `batchemo video` flags (after --)")
    a = ap.parse_args()
    rows = []
    for minutes in a.minutes:
        video = build(minutes)
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "batchemo.cli", "video", str(video), "--csv", f"{tmp}/t.csv", "--report",
                   f"{tmp}/r.html", "--moments", f"{tmp}/m.csv", "-q", *a.extra]
            m = measure(cmd)
            report = Path(tmp, "r.html").stat().st_size / 2**20 if Path(tmp, "r.html").exists() else float("nan")
            timeline = sum(1 for _ in open(f"{tmp}/t.csv")) - 1 if Path(tmp, "t.csv").exists() else 0
        rows.append((minutes, m, report, timeline))
        print(f"{minutes:g} min: {m['wall']:.0f} s, peak tree RSS {m['total']:.0f} MB (PSS {m['pss']:.0f}), report "
              f"{report:.2f} MB, {timeline} timeline rows", flush=True)
    print(f"\n{'video':>8s} {'wall s':>8s} {'x real time':>12s} {'peak RSS MB':>12s} {'peak PSS MB':>12s} "
          f"{'report MB':>10s} {'rows':>8s}")
    for minutes, m, report, timeline in rows:
        print(f"{minutes:>6g} m {m['wall']:8.0f} {minutes * 60 / m['wall']:12.2f} {m['total']:12.0f} {m['pss']:12.0f} "
              f"{report:10.2f} {timeline:8d}")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"\npeak RSS, {last[0]:g} min against {first[0]:g} min: {last[1]['total'] / first[1]['total']:.2f}x")


if __name__ == "__main__":
    main()
