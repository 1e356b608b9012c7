"""Faces that cannot be read: too dark, too blurred or too small for an emotion to be seen in them.

Such a face still gets the network's probabilities, but its label is marked uncertain and its row says
why (``reason``), so a near-black box never reads "angry 77%" as a fact. The network itself was also taught
to doubt darkened, blurred, tiny and half-covered faces (``training.pipeline.unreadable``); these rules
are the floor under it, for the faces no training covers.

Thresholds, measured on FER2013's 3,589 validation faces (``benchmarks/unreadable_faces.py``):

* dark: the brightest 5% of the 48x48 crop below grey level 40 (of 255). No validation face is that dark
  (1st percentile: 104); a face at a tenth of its light is (median 21); near-black boxes of the shared clip
  measured 16-26.
* blurred: sharpness under 0.05, the variance of the Laplacian of the crop scaled to unit contrast (so it
  does not depend on light). Validation faces: 1st percentile 0.23; blurred by a Gaussian of 1.5 px:
  99th percentile 0.065, of 2 px 0.03; reduced to 12 px and enlarged: 0.05.
* small: a box under 20 pixels wide in the original image (the CNN then reads a face enlarged 2.4x).
"""
from __future__ import annotations

import numpy as np

#: The brightest 5% of the crop below this grey level: too dark to read.
DARK_P95 = 40.0
#: Contrast-free sharpness (``sharpness``) below this: too blurred to read.
BLUR_SHARPNESS = 0.05
#: A face box narrower than this, in original pixels: too small to read.
MIN_SIDE = 20


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a (48, 48) crop scaled to zero mean and unit spread: edges per contrast."""
    import cv2

    x = np.asarray(crop, np.float32)
    spread = float(x.std())
    if spread < 1e-3:
        return 0.0
    return float(cv2.Laplacian((x - x.mean()) / spread, cv2.CV_32F).var())


def reasons(crops: np.ndarray, widths: np.ndarray | None = None) -> list[str]:
    """Per face of uint8 (N, 48, 48) ``crops`` (box ``widths`` in original pixels, when known): "" when it
    can be read, else why not, in words a table's ``reason`` holds."""
    out = []
    for i, crop in enumerate(np.asarray(crops)):
        why = []
        if widths is not None and int(widths[i]) < MIN_SIDE:
            why.append(f"too small to read ({int(widths[i])} px wide)")
        if float(np.percentile(crop, 95)) < DARK_P95:
            why.append("too dark to read")
        elif sharpness(crop) < BLUR_SHARPNESS:
            why.append("too blurred to read")
        out.append("; ".join(why))
    return out
