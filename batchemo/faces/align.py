"""The 48x48 crop the emotion network reads: the face aligned by its 5 landmarks onto FER2013's framing.
"""
from __future__ import annotations

import math

import numpy as np

from ..core.records import INPUT_SIZE, Box
from .detect import Detection, to_gray

# Where FER2013 puts a face in its 48x48 frame: dlib's 5 landmarks in dlib's order (image-right eye outer
# and inner corner, image-left eye outer and inner corner, bottom of the nose). Measured on 1,034 FER2013
# training faces (1,500 sampled; upscaled 4x, found by dlib HOG, 5-point predictor), medians made
# left-right symmetric: eyes 17.4 px apart at height 19, nose 12.8 px below them. align_face maps a face's
# landmarks onto these by a least-squares similarity.
FER_LANDMARKS = np.array(
    [[36.2, 18.9], [29.2, 19.2], [11.8, 18.9], [18.8, 19.2], [24.0, 31.8]], np.float32
)


# ---------------------------------------------------------------- crops
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


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity (rotation, uniform scale, shift) taking src points onto dst."""
    sm, dm = src.mean(0), dst.mean(0)
    s, d = src - sm, dst - dm
    a = (s * d).sum() / (s ** 2).sum()
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / (s ** 2).sum()
    m = np.array([[a, -b], [b, a]])
    return np.hstack([m, (dm - m @ sm)[:, None]])


def align_face(gray: np.ndarray, det: Detection) -> np.ndarray:
    """The face turned upright (eyes level) and framed like FER2013's faces, uint8 48x48.

    The 5 landmarks are mapped onto ``FER_LANDMARKS`` by the least-squares similarity, so rotation comes
    from the eyes and scale from eyes and nose together (a turned head does not blow the crop up). Big
    faces are first shrunk by area averaging to twice the crop's scale, then warped (measured: this
    classifies better than warping onto a 96x96 canvas and area-averaging that down). Without
    landmarks this is ``crop_face(gray, det.box)``.
    """
    import cv2

    gray = to_gray(np.asarray(gray))
    if det.landmarks is None:
        return crop_face(gray, det.box)
    marks = np.asarray(det.landmarks, np.float64)
    m = _similarity(marks, FER_LANDMARKS.astype(np.float64))
    zoom = math.hypot(m[0, 0], m[1, 0])
    if zoom < 0.5:  # shrink a region around the face by area averaging to 2x, then warp
        centre = marks.mean(0)
        half = 1.5 * INPUT_SIZE / zoom
        x0, y0 = (max(0, int(c - half)) for c in centre)
        x1, y1 = min(gray.shape[1], int(centre[0] + half)), min(gray.shape[0], int(centre[1] + half))
        if x1 > x0 and y1 > y0:
            f = 2 * zoom
            roi = cv2.resize(gray[y0:y1, x0:x1], None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            fx, fy = roi.shape[1] / (x1 - x0), roi.shape[0] / (y1 - y0)
            gray = roi
            marks = (marks - (x0, y0)) * (fx, fy)
            m = _similarity(marks, FER_LANDMARKS.astype(np.float64))
    return cv2.warpAffine(gray, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
