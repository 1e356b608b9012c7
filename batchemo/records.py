"""The typed records that cross module boundaries: sources -> faces -> predictions -> explanations."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import CLASSES


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the original image (x, y = top-left corner)."""

    x: int
    y: int
    w: int
    h: int

    def scaled(self, factor: float) -> "Box":
        return Box(*(int(round(v * factor)) for v in (self.x, self.y, self.w, self.h)))

    def iou(self, other: "Box") -> float:
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union else 0.0

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


@dataclass
class Face:
    """One detected face: where it came from, where it is, and its 48x48 grayscale crop."""

    source: str
    index: int  # face number within its image or frame, left to right
    box: Box
    crop: np.ndarray  # uint8 (48, 48)
    frame: int | None = None  # video frame index
    time: float | None = None  # video timestamp, seconds


@dataclass
class Prediction:
    """The CNN's 7 probabilities for one face, in CLASSES order."""

    probabilities: np.ndarray  # float32 (7,)

    @property
    def label(self) -> str:
        return CLASSES[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    def as_dict(self) -> dict[str, float]:
        return {f"p_{c}": float(p) for c, p in zip(CLASSES, self.probabilities)}


@dataclass
class Explanation:
    """LIME's answer for one face and one class: superpixels, their weights, and the images a person reads."""

    label: str
    segments: np.ndarray  # int (48, 48): superpixel id per pixel
    weights: dict[int, float]  # superpixel id -> LIME weight for ``label``
    heatmap: np.ndarray  # float32 (48, 48): each pixel's superpixel weight
    boundaries: np.ndarray  # uint8 RGB (48, 48, 3): top features outlined, as lime's mark_boundaries draws
    score: float  # R^2 of LIME's local linear fit for this label
    # Faithfulness (RISE deletion/insertion, Petsiuk et al. 2018), on the classifier that was explained:
    # the area under this label's probability while superpixels are hidden (deletion) or revealed
    # (insertion) in LIME's order, most supporting first, and the same for random orders of this face.
    deletion_auc: float = float("nan")  # lower is better
    insertion_auc: float = float("nan")  # higher is better
    deletion_auc_random: float = float("nan")
    insertion_auc_random: float = float("nan")
    classifier: str = ""  # what LIME queried, e.g. "int8 TFLite, flip-averaged"
    num_samples: int = 0  # LIME perturbations behind this explanation

    @property
    def faithfulness(self) -> float:
        """How much better than random LIME's order explains the class, -1..1 (0: no better than chance).

        The mean of two gaps: how much faster the class's probability falls when the heatmap's regions are
        hidden first, and how much faster it comes back when they are revealed first, than in random order.
        """
        return 0.5 * ((self.deletion_auc_random - self.deletion_auc) + (self.insertion_auc - self.insertion_auc_random))
