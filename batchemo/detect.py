"""Face detectors behind one interface: ``detect(rgb) -> list[Box]``; and cropping faces for the CNN.

``haar`` is OpenCV's frontal-face cascade (always available); ``hog`` and ``cnn`` are dlib's, through the
optional ``face-recognition`` package.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import INPUT_SIZE
from .records import Box

DETECTORS = ("haar", "hog", "cnn")
DLIB_INSTALL = "pip install 'batchemo[dlib]'  (or: pip install face-recognition; dlib compiles from source)"


class DetectorUnavailable(Exception):
    """A detector whose backend is not installed; the message names the install command."""


def to_gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


@dataclass
class HaarDetector:
    """OpenCV's Haar cascade with the seed's settings (scaleFactor 1.3, minNeighbors 5) as defaults."""

    scale_factor: float = 1.3
    min_neighbors: int = 5
    min_size: int = 20
    name: str = "haar"

    def __post_init__(self):
        import cv2

        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise DetectorUnavailable(f"cannot load OpenCV's Haar cascade {path}")

    def detect(self, rgb: np.ndarray) -> list[Box]:
        found = self._cascade.detectMultiScale(
            to_gray(rgb), scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        return sorted((Box(int(x), int(y), int(w), int(h)) for x, y, w, h in found), key=lambda b: (b.x, b.y))


@dataclass
class DlibDetector:
    """dlib's HOG or CNN face detector via face-recognition (an optional extra)."""

    name: str = "hog"
    upsample: int = 1

    def __post_init__(self):
        try:
            import face_recognition  # noqa: F401
        except ImportError:
            raise DetectorUnavailable(f"the '{self.name}' detector needs dlib: {DLIB_INSTALL}") from None

    def detect(self, rgb: np.ndarray) -> list[Box]:
        import face_recognition

        img = np.ascontiguousarray(rgb if rgb.ndim == 3 else np.stack([rgb] * 3, -1))
        locs = face_recognition.face_locations(img, number_of_times_to_upsample=self.upsample, model=self.name)
        boxes = [Box(left, top, right - left, bottom - top) for top, right, bottom, left in locs]
        return sorted(boxes, key=lambda b: (b.x, b.y))


def make_detector(name: str = "haar", **options):
    """A detector by name: 'haar' (default), 'hog' or 'cnn'."""
    if name == "haar":
        return HaarDetector(**options)
    if name in ("hog", "cnn"):
        return DlibDetector(name=name, **options)
    raise ValueError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")


def crop_face(gray: np.ndarray, box: Box) -> np.ndarray:
    """The box cut from a grayscale image and resized to 48x48, as the seed does (clipped to the image)."""
    import cv2

    h, w = gray.shape[:2]
    x0, y0 = max(box.x, 0), max(box.y, 0)
    x1, y1 = min(box.x + box.w, w), min(box.y + box.h, h)
    patch = gray[y0:y1, x0:x1]
    if patch.size == 0:
        return np.zeros((INPUT_SIZE, INPUT_SIZE), np.uint8)
    interp = cv2.INTER_AREA if min(patch.shape) > INPUT_SIZE else cv2.INTER_LINEAR
    return cv2.resize(patch, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)
