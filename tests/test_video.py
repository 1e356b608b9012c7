"""batchemo video: sampling at real timestamps, tracking, smoothing, bad files, CLI, report, run hook.

Most tests use a video generated here (skimage's astronaut sliding across a canvas, MJPG in an AVI, whose
frames stay readable when the file is cut short) and an untrained model: they check plumbing, not accuracy.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from batchemo.core.records import CLASSES, PROB_COLUMNS, Box
from batchemo.faces.track import SMOOTH_COLUMNS, FaceTracker, smooth_timeline
from batchemo.outputs.frames import analyze_video, timeline_frame
from batchemo.outputs.rows import TIMELINE_COLUMNS
from batchemo.pipeline import video
from batchemo.pipeline.video import video_timeline
from batchemo.sources import video as sources

RAW_COLUMNS = [f"raw_{c}" for c in PROB_COLUMNS]

FPS, N_FRAMES, W, H, SIDE, STEP = 8, 24, 480, 256, 240, 10


def write_video(path, frames, fps=FPS, fourcc="MJPG"):
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), path
    for rgb in frames:
        writer.write(np.ascontiguousarray(rgb[..., ::-1]))
    writer.release()
    return path


@pytest.fixture(scope="module")
def astro_video(tmp_path_factory, astronaut_rgb):
    """3 s at 8 fps: the astronaut (240 px) moves 10 px right per frame; Haar finds her in every frame."""
    import cv2

    face = cv2.resize(astronaut_rgb, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(N_FRAMES):
        canvas = np.full((H, W, 3), 40, np.uint8)
        canvas[8: 8 + SIDE, i * STEP: i * STEP + SIDE] = face
        frames.append(canvas)
    return write_video(tmp_path_factory.mktemp("video") / "astronaut.avi", frames)


@pytest.fixture(scope="module")
def blank_video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "blank.avi", [np.full((120, 160, 3), 90, np.uint8)] * 6)


@pytest.fixture(scope="module")
def model(untrained_model_path):
    from batchemo.emotions.model import load_model

    return load_model(untrained_model_path)


# ---------------------------------------------------------------- generated video
def test_every_frame_one_face_id(astro_video, model):
    result = video_timeline(astro_video, model, fps=0, smooth=None)
    df, a = timeline_frame([result]), result.info
    assert list(df.columns) == TIMELINE_COLUMNS
    assert a["status"] == "ok" and a["reason"] == "" and a["warnings"] == []
    assert a["frames_decoded"] == a["frames_sampled"] == N_FRAMES
    assert df["frame"].tolist() == list(range(N_FRAMES))  # every sampled frame present, once
    assert df["face_id"].unique().tolist() == [1]
    np.testing.assert_allclose(df["time"], np.arange(N_FRAMES) / FPS, atol=1e-3)
    assert df["x"].is_monotonic_increasing and df["x"].iloc[-1] - df["x"].iloc[0] > 150
    np.testing.assert_allclose(df[PROB_COLUMNS].sum(axis=1), 1, atol=1e-4)
    assert (df[RAW_COLUMNS].to_numpy() == df[PROB_COLUMNS].to_numpy()).all()  # smoothing off: the same
    assert a["duration"] == pytest.approx(N_FRAMES / FPS, abs=1e-3)
    assert 1 <= len(result.filmstrip) <= 12 and {t.track for t in result.tracks} == {1}
    assert (df["score"] > 0).all()  # the detector's confidence for every face
    assert all(isinstance(v, (str, int, float, list, dict, type(None))) for v in a.values())  # plain values only


def test_every_frame_searched_every_4th_and_followed_between(astro_video, model, monkeypatch):
    """--fps 0 with 2 full searches a second (every 4th frame at 8 fps): the face is in every frame's row, its
    followed box moves with it, one id throughout; smoothing is on by default."""
    from batchemo.pipeline.engine import worker_detector

    det = worker_detector("auto", {})
    calls = []
    monkeypatch.setattr(det, "detect", lambda rgb, f=det.detect: calls.append(rgb.shape[:2]) or f(rgb))
    df = analyze_video(astro_video, model, fps=0, detect_fps=2, detector=det, people=False)
    full = [c for c in calls if c == (H, W)]
    assert len(full) == N_FRAMES // 4, calls  # whole frames searched only every 4th frame
    assert len(calls) - len(full) == N_FRAMES - len(full)  # and one small window between
    assert df["frame"].tolist() == list(range(N_FRAMES)) and df["face_id"].unique().tolist() == [1]
    dx = np.diff(df["x"].to_numpy())
    assert np.abs(dx - STEP).max() <= 4, dx  # the followed box moves 10 px a frame, as the face does
    assert df.attrs["smooth"] == video.SMOOTH and df.attrs["detector"] == "yunet"


def test_sampling_follows_timestamps(astro_video, model):
    df = analyze_video(astro_video, model, fps=2)
    assert df["frame"].tolist() == [0, 4, 8, 12, 16, 20]  # one frame each 0.5 s at 8 fps
    np.testing.assert_allclose(df["time"], [0, 0.5, 1.0, 1.5, 2.0, 2.5], atol=1e-3)
    assert df["face_id"].nunique() == 1 and df.attrs["frames_decoded"] == N_FRAMES
    assert df.attrs["sample_period"] == pytest.approx(0.5, abs=1e-3)


def test_truncated_copy_keeps_readable_part(astro_video, model, tmp_path):
    full = analyze_video(astro_video, model, fps=0)
    cut = tmp_path / "cut.avi"
    data = astro_video.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    df = analyze_video(cut, model, fps=0)
    a = df.attrs
    assert a["status"] == "partial" and "truncated" in a["reason"]
    assert any("truncated" in w for w in a["warnings"])
    assert 3 <= len(df) < N_FRAMES
    assert df["frame"].tolist() == list(range(len(df)))
    pd.testing.assert_frame_equal(df[["frame", "time", "face_id", "x", "y", "w", "h"]],
                                  full[["frame", "time", "face_id", "x", "y", "w", "h"]].iloc[: len(df)])


@pytest.mark.parametrize("name, content, expected", [
    ("missing.mp4", None, "no such file"),
    ("empty.mp4", b"", "empty file (0 bytes)"),
    ("notes.mp4", b"this is not a video\n" * 50, "cannot open as a video"),
])
def test_bad_files_fail_with_a_reason(tmp_path, model, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    df = analyze_video(path, model)
    assert df.attrs["status"] == "failed" and expected in df.attrs["reason"]
    assert len(df) == 0 and list(df.columns) == TIMELINE_COLUMNS


def test_mp4_cut_short_fails_clearly(tmp_path, model):
    mp4 = write_video(tmp_path / "a.mp4", [np.full((64, 64, 3), 80, np.uint8)] * 10, fourcc="mp4v")
    data = mp4.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # its index (moov) is at the end: gone
    df = analyze_video(tmp_path / "cut.mp4", model)
    assert df.attrs["status"] == "failed" and "MP4 cut short" in df.attrs["reason"]


class _Header0:
    """A capture whose header reports 0 fps and no frame count (optionally no timestamps either)."""

    def __init__(self, cap, timestamps=True):
        self._cap, self._timestamps = cap, timestamps

    def get(self, prop):
        import cv2

        if prop in (cv2.CAP_PROP_FPS, cv2.CAP_PROP_FRAME_COUNT):
            return 0.0
        if prop == cv2.CAP_PROP_POS_MSEC and not self._timestamps:
            return 0.0
        return self._cap.get(prop)

    def __getattr__(self, name):
        return getattr(self._cap, name)


def test_zero_fps_header_uses_frame_timestamps(astro_video, model, monkeypatch):
    real = sources._open_capture
    monkeypatch.setattr(sources, "_open_capture", lambda p: _Header0(real(p)))
    df = analyze_video(astro_video, model, fps=2)
    assert df.attrs["status"] == "ok" and "0 fps" in df.attrs["warnings"][0]
    np.testing.assert_allclose(df["time"], [0, 0.5, 1.0, 1.5, 2.0, 2.5], atol=1e-3)

    monkeypatch.setattr(sources, "_open_capture", lambda p: _Header0(real(p), timestamps=False))
    df = analyze_video(astro_video, model, fps=2)
    assert df.attrs["status"] == "failed" and "0 fps" in df.attrs["reason"] and "timestamps" in df.attrs["reason"]


# ---------------------------------------------------------------- tracker and smoothing
def test_tracker_keeps_ids_and_closes_stale_tracks():
    tr = FaceTracker(max_gap=1.0)
    assert tr.update([Box(0, 0, 50, 50), Box(300, 0, 50, 50)], 0.0) == [1, 2]
    assert tr.update([Box(310, 0, 50, 50), Box(12, 0, 50, 50)], 0.1) == [2, 1]  # order of boxes irrelevant
    # a fast move (no overlap with the last box) is still followed through the track's velocity
    assert tr.update([Box(80, 0, 50, 50)], 0.5) == [1]
    assert tr.update([Box(100, 0, 50, 50)], 0.6) == [1]
    assert tr.update([Box(300, 0, 50, 50)], 2.0) == [3]  # face 2 unseen for > max_gap: a new id


def test_exponential_smoothing_per_face():
    tau = 0.5
    rows = []
    for i, t in enumerate([0.0, 0.25, 0.5, 1.5]):
        for fid, hot in ((1, i % 2 * 3), (2, 4)):
            p = np.full(7, 0.0)
            p[hot] = 1.0
            rows.append({"face_id": fid, "time": t, **dict(zip(PROB_COLUMNS, p))})
    df = smooth_timeline(pd.DataFrame(rows), tau)
    f1 = df[df["face_id"] == 1]
    s = np.eye(7)[0]
    expected = [s.copy()]
    for prev, t, hot in ((0.0, 0.25, 3), (0.25, 0.5, 0), (0.5, 1.5, 3)):
        s = s + (1 - math.exp(-(t - prev) / tau)) * (np.eye(7)[hot] - s)
        expected.append(s.copy())
    np.testing.assert_allclose(f1[SMOOTH_COLUMNS].to_numpy(), expected, atol=1e-9)
    assert (df.loc[df["face_id"] == 2, "ps_neutral"] == 1).all()  # a steady face is untouched by the other
    assert (f1[PROB_COLUMNS].to_numpy() == np.eye(7)[[0, 3, 0, 3]]).all()  # raw values kept
    assert f1["label_smoothed"].tolist()[:2] == ["angry", "angry"]


def test_filmstrip_is_bounded_and_spread():
    from batchemo.pipeline.clip import Filmstrip

    strip = Filmstrip(12)
    for n in range(1000):
        strip.offer(n, n, n / 2, 1)
    kept = [n for n, *_ in strip.kept]
    assert 6 <= len(kept) <= 12 and kept[0] == 0 and kept[-1] > 700


# ---------------------------------------------------------------- CLI, report, run hook
def test_cli_video(astro_video, blank_video, untrained_model_path, tmp_path, capsys):
    from batchemo.cli import main

    csv, html = tmp_path / "timeline.csv", tmp_path / "video.html"
    missing = tmp_path / "gone.mp4"
    rc = main(["video", str(astro_video), str(blank_video), str(missing), "--csv", str(csv), "--report", str(html),
               "--fps", "4", "--smooth", "0.5", "--explain-keyframes", "1", "--lime-samples", "40",
               "--model", str(untrained_model_path), "-q"])
    err = capsys.readouterr().err
    assert rc == 0
    assert f"failed: {missing}: no such file" in err
    df = pd.read_csv(csv)
    assert list(df.columns) == TIMELINE_COLUMNS
    raw, smoothed = df[RAW_COLUMNS].to_numpy(), df[PROB_COLUMNS].to_numpy()
    np.testing.assert_allclose(raw.sum(1), 1, atol=1e-3)
    np.testing.assert_allclose(smoothed.sum(1), 1, atol=1e-3)
    assert (df["label"] == [CLASSES[i] for i in smoothed.argmax(1)]).all()
    assert (df["raw_label"] == [CLASSES[i] for i in raw.argmax(1)]).all()
    assert set(df["video"]) == {str(astro_video)} and len(df) == 12 and df["face_id"].nunique() == 1
    page = html.read_text()
    assert "time constant 0.5 s" in page  # smoothing itself: test_exponential_smoothing_per_face
    assert "<h3>person_1</h3>" in page and set(df["person"]) == {"person_1"}
    assert "strongest " in page and "faithfulness" in page and page.count("data:image/") >= 3
    assert "No face found" in page and "no such file" in page
    assert (df["uncertain"] == (df["confidence"] < 0.5)).all()  # the smoothed label's doubt, as shown
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave nothing behind

    # nothing processable: non-zero exit, and no table at all (not a header-only one)
    csv.unlink()
    rc = main(["video", str(missing), "--csv", str(csv), "--model", str(untrained_model_path), "-q"])
    assert rc == 1 and not csv.exists()
    assert "nothing written" in capsys.readouterr().err


def test_a_photo_given_as_a_video_says_so(tmp_path, astronaut_rgb, model):
    from .conftest import write_image

    df = analyze_video(write_image(tmp_path / "a.jpg", astronaut_rgb), model)
    assert df.attrs["status"] == "failed" and "a photo, not a video" in df.attrs["reason"]


# ---------------------------------------------------------------- the real clip from ../shared
def _shot_cuts(clip, frames: list) -> set:
    """Which of ``frames`` start a new shot, told as the pipeline tells them (``track.ShotCuts``), comparing
    each with the previous one of ``frames``."""
    import cv2

    from batchemo.faces.track import ShotCuts

    cap, cuts, shots, i = cv2.VideoCapture(str(clip)), set(), ShotCuts(), 0
    wanted = set(frames)
    while wanted:
        ok, bgr = cap.read()
        if not ok:
            break
        if i in wanted:
            wanted.discard(i)
            if shots.is_cut(np.ascontiguousarray(bgr[..., ::-1])):
                cuts.add(i)
        i += 1
    return cuts


@pytest.mark.slow
def test_real_clip(videos, model):
    clip = videos / "short_hamilton_clip.mp4"
    df = analyze_video(clip, model, fps=2)
    a = df.attrs
    assert a["status"] == "ok" and a["duration"] == pytest.approx(9.2, abs=0.2) and a["faces"] >= 1
    assert a["frames_sampled"] == pytest.approx(19, abs=1) and a["frames_decoded"] == 275
    assert (np.diff(np.sort(df["time"].unique())) >= 0.49).all()  # at most one sample per 0.5 s

    df = analyze_video(clip, model, fps=10)  # neighbouring samples 0.1 s apart
    assert len(df) >= 30 and df.attrs["faces"] >= 1
    times = df.groupby("frame", sort=True)["time"].first().to_numpy()
    assert (np.diff(times) > 0.09).all()  # times increase with the frame index, real-time spacing
    # stable ids: a face that overlaps well with one in the previous sampled frame keeps its id, within a
    # shot (at a cut every track closes: the clip's face at frame 84 is another shot's, at nearly its place)
    frames = sorted(df["frame"].unique())
    cuts, checked = _shot_cuts(clip, frames), 0
    assert {21, 84, 213} <= cuts  # the clip's three cuts (track.ShotCuts)
    for prev, cur in zip(frames, frames[1:]):
        if cur in cuts:
            continue
        before, after = df[df["frame"] == prev], df[df["frame"] == cur]
        for _, r in after.iterrows():
            box = Box(r.x, r.y, r.w, r.h)
            for _, q in before.iterrows():
                if box.iou(Box(q.x, q.y, q.w, q.h)) > 0.5:
                    assert r.face_id == q.face_id
                    checked += 1
    assert checked >= 10
    # and a face keeps its id for a while: the longest track spans over a second
    spans = df.groupby("face_id")["time"].agg(lambda t: t.max() - t.min())
    assert spans.max() > 1.0


def test_shot_cuts_close_every_track(astronaut_rgb):
    """A cut (another picture) is told from motion (the same picture shifted), and closes the tracks."""
    from skimage import data

    from batchemo.faces.track import ShotCuts

    cuts = ShotCuts()
    shifted = np.roll(astronaut_rgb, 12, axis=1)
    assert [cuts.is_cut(astronaut_rgb), cuts.is_cut(shifted), cuts.is_cut(data.coffee()),
            cuts.is_cut(data.coffee())] == [False, False, True, False]
    tracker = FaceTracker()
    first = tracker.update([Box(10, 10, 50, 50)], 0.0)
    assert tracker.update([Box(12, 10, 50, 50)], 0.1) == first
    tracker.cut()
    assert tracker.update([Box(12, 10, 50, 50)], 0.2) != first  # same place, new shot: a new face


@pytest.mark.slow
def test_every_frame_of_the_real_clip_keeps_the_turning_performer_in_one_track(videos, model):
    """Frames 82-210 are one shot of the performer, who turns three-quarter and back (faces.json tags
    frames 105 and 150): read every frame, with full searches only 5 times a second, he is one face id
    in nearly every frame of the shot, and the shot cuts at 82 and 211 start new tracks."""
    df = analyze_video(videos / "short_hamilton_clip.mp4", model, fps=0, people=False)
    shot = df[(df["frame"] >= 82) & (df["frame"] <= 210)]
    main_id = shot["face_id"].mode().iloc[0]
    frames = set(shot.loc[shot["face_id"] == main_id, "frame"])
    assert len(frames) >= 0.95 * 129, len(frames)
    assert df.loc[df["face_id"] == main_id, "frame"].between(82, 210).all()  # no track across the cuts


# ---------------------------------------------------------------- long videos: resume, moments
@pytest.fixture(scope="module")
def long_video(tmp_path_factory, astronaut_rgb):
    """40 s at 10 fps: the astronaut's face (120 px) gliding back and forth across a 320x200 canvas."""
    import cv2

    face = cv2.resize(astronaut_rgb, (120, 120), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(400):
        x = int(100 + 90 * math.sin(i / 25.0))
        canvas = np.full((200, 320, 3), 40, np.uint8)
        canvas[40:160, x: x + 120] = face
        frames.append(canvas)
    return write_video(tmp_path_factory.mktemp("video") / "long.avi", frames, fps=10)


def _video_cli(video, out, model, **popen):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "batchemo.cli", "video", str(video), "--csv", str(out), "--fps", "5", "--model",
           str(model), "-q"]
    from .conftest import interruptible

    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible, **popen)


@pytest.fixture(scope="module")
def whole_timeline(long_video, untrained_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "whole.csv"
    proc = _video_cli(long_video, out, untrained_model_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return pd.read_csv(out)


@pytest.mark.parametrize("stop", ["SIGINT", "SIGKILL"])
def test_a_stopped_video_continues_to_the_same_timeline(long_video, untrained_model_path, whole_timeline, tmp_path,
                                                        stop):
    """Stopped (Ctrl-C, or killed) after its first checkpoint, the same command continues from it and ends
    with the timeline of a run that never stopped: the same rows, tracks and people."""
    import signal
    import time

    out = tmp_path / "cut.csv"
    proc = _video_cli(long_video, out, untrained_model_path)
    resume = tmp_path / ".cut.csv.resume"
    deadline = time.time() + 120
    while not list(resume.glob("videos/*/state.pkl")):
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(getattr(signal, stop))
    _, err = proc.communicate(timeout=60)
    assert not out.exists()  # nothing half-written
    if stop == "SIGINT":
        assert proc.returncode == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err
        assert "interrupted" in err and "run the same command again" in err
    again = _video_cli(long_video, out, untrained_model_path)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "continued from" in err
    pd.testing.assert_frame_equal(pd.read_csv(out), whole_timeline)
    assert not resume.exists()  # removed once the run completes


def _fer_face(fer_validation, shared, emotion: str, label: str):
    """A validation face 9 or 10 of 10 people called ``emotion`` that the shipped model reads as ``label``
    with at least 0.7, enlarged to 192 px; skipped when there is none."""
    import cv2

    from batchemo.emotions.model import load_model

    votes = pd.read_csv(shared / "datasets" / "ferplus-votes.csv")
    model = load_model()
    for f in votes.loc[votes.file.str.contains("/validation/") & (votes[emotion] >= 9), "file"][:40]:
        img = cv2.imread(str(fer_validation.parent.parent / f), cv2.IMREAD_GRAYSCALE)
        p = model.predict(img[None])[0]
        if CLASSES[int(p.argmax())] == label and p.max() >= 0.7:
            return cv2.resize(img, (192, 192), interpolation=cv2.INTER_CUBIC)
    pytest.skip(f"no validation face of {emotion} read as {label} at 0.7")


@pytest.mark.slow
def test_moments_find_a_change_of_expression_at_its_time(fer_validation, shared, tmp_path):
    """A generated video: a happy face for 5 s, then a surprised one at the same place. The moments are the
    strongest moment of each emotion and one change of mood, happy -> surprise, at 5.0-6.5 s (smoothing
    lags about 1 s); the table and the report say so."""
    from batchemo.cli import main

    happy, surprised = _fer_face(fer_validation, shared, "happiness", "happy"), \
        _fer_face(fer_validation, shared, "surprise", "surprise")
    frames = []
    for i in range(100):  # 10 s at 10 fps
        canvas = np.full((360, 640), 110, np.uint8)
        canvas[84:276, 224:416] = happy if i < 50 else surprised
        frames.append(np.repeat(canvas[..., None], 3, axis=2))
    clip = write_video(tmp_path / "change.avi", frames, fps=10)
    moments, report = tmp_path / "moments.csv", tmp_path / "v.html"
    assert main(["video", str(clip), "--moments", str(moments), "--report", str(report), "-q"]) == 0
    m = pd.read_csv(moments)
    changes = m[m["kind"] == "change"]
    assert len(changes) == 1, m
    c = changes.iloc[0]
    assert (c["previous"], c["label"]) == ("happy", "surprise") and 5.0 <= c["time"] <= 6.5
    peaks = m[m["kind"] == "peak"].set_index("label")
    assert peaks.loc["happy", "time"] < 5.0 <= peaks.loc["surprise", "time"]
    page = report.read_text()
    assert "mood change" in page and "strongest happy" in page and "strongest surprise" in page


def test_a_change_is_shown_with_the_probability_it_had_when_it_began():
    """A change's frame is where the new label began: its confidence is the label's probability there (the
    report and the moments table show that frame), not the run's best, seen seconds later."""
    from batchemo.pipeline.moments import MomentFinder

    finder = MomentFinder("v.mp4")
    happy, neutral = CLASSES.index("happy"), CLASSES.index("neutral")

    def probs(k: int, p: float) -> np.ndarray:
        out = np.full(len(CLASSES), (1 - p) / (len(CLASSES) - 1))
        out[k] = p
        return out

    samples = [(happy, 0.9)] * 6 + [(neutral, 0.55 + 0.07 * i) for i in range(6)]
    for n, (k, p) in enumerate(samples):
        finder.add(1, n * 15, n * 0.5, probs(k, p), (10, 10, 50, 50))
    finder.close(1)
    (change,) = [m for m in finder.moments() if m.kind == "change"]
    assert (change.previous, change.label, change.time) == ("happy", "neutral", 3.0)
    assert change.confidence == pytest.approx(0.55)
    peak = next(m for m in finder.moments() if m.kind == "peak" and m.label == "neutral")
    assert peak.confidence == pytest.approx(0.9) and peak.time == 5.5


def test_a_stopped_video_without_a_work_folder_leaves_no_temp_folder(astro_video, model, monkeypatch, tmp_path):
    """Without --cache or resume the timeline lives in a temp folder (it holds identity embeddings): Ctrl-C
    mid-video removes it at once, and a finished one goes with its result."""
    import gc
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(video, "_scan", stop)
    with pytest.raises(KeyboardInterrupt):
        video.video_timeline(astro_video, model=model, fps=2)
    assert not list(tmp_path.glob("batchemo-video-*"))
    monkeypatch.undo()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = video.video_timeline(astro_video, model=model, fps=2)
    (folder,) = tmp_path.glob("batchemo-video-*")
    assert not (folder / video.STATE_FILE).exists() and not (folder / video.DONE_FILE).exists()  # nothing to resume
    assert result.rows > 0
    del result
    gc.collect()
    assert not folder.exists()
