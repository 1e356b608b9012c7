"""How long a smoothed label must hold to be a mood: moments found per minute at HOLD from 0.5 to 4 s.

    python benchmarks/moments.py [--minutes 10] [--holds 0.5 1 1.5 2 3 4]

Each video (the shared clip, and the clip joined to itself for ``--minutes``, as benchmarks/video_length.py
builds it) is analysed once at the defaults (2 fps, 1 s smoothing); its smoothed timeline is then replayed
through ``pipeline.moments.MomentFinder`` at each HOLD. Printed per HOLD: peaks and changes per minute of
video, and the share of changes that are **flickers** (the face went back to the label it left within
3 s: a wobble of the label, not a change of mood a person would jump to).
"""
from __future__ import annotations

import argparse

from _common import SHARED
from video_length import build

FLICKER = 3.0  # seconds: a change undone this fast was a wobble


def replay(analysis, hold: float) -> list:
    """Every moment of ``analysis``'s timeline at ``hold`` seconds (faces closed when the timeline ends)."""
    from batchemo.pipeline.moments import MomentFinder

    finder = MomentFinder(analysis.info["video"], hold=hold)
    for chunk in analysis.chunks():
        for i in range(len(chunk)):
            if not chunk.unreadable[i]:
                finder.add(int(chunk.face_id[i]), int(chunk.frame[i]), float(chunk.time[i]), chunk.smoothed[i],
                           chunk.boxes[i])
    for fid in list(finder.faces):
        finder.close(fid)
    return finder.moments()


def flickers(changes: list) -> int:
    """Changes A -> B followed, on the same face within FLICKER seconds, by B -> A."""
    n = 0
    by_face: dict[int, list] = {}
    for m in changes:
        by_face.setdefault(m.face_id, []).append(m)
    for ms in by_face.values():
        ms.sort(key=lambda m: m.time)
        n += sum(1 for a, b in zip(ms, ms[1:]) if b.label == a.previous and b.time - a.time < FLICKER)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--holds", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
    a = ap.parse_args()
    from batchemo.pipeline.video import analyze_videos

    clip = SHARED / "media" / "videos" / "short_hamilton_clip.mp4"
    for video in (clip, build(a.minutes)):
        (analysis,) = analyze_videos([video], people=False, progress=False)
        minutes = max(float(analysis.info.get("duration") or 0.0), 1e-6) / 60
        print(f"\n{video.name}: {minutes:.1f} min, {len(analysis.tracks)} tracks")
        print(f"{'hold s':>7} {'peaks/min':>10} {'changes/min':>12} {'flickers':>9}")
        for hold in a.holds:
            found = replay(analysis, hold)
            changes = [m for m in found if m.kind == "change"]
            peaks = len(found) - len(changes)
            share = flickers(changes) / len(changes) if changes else float("nan")
            print(f"{hold:7.1f} {peaks / minutes:10.1f} {len(changes) / minutes:12.1f} {share:9.0%}")


if __name__ == "__main__":
    main()
