"""LIME for faces: which superpixels of the 48x48 crop pushed the CNN towards a class, and how to show it.

We call the real ``lime_image.LimeImageExplainer`` with the seed's settings, with one change that matters:
all perturbations of a face go to the CNN in a single batch (lime's default is 10 at a time, which spends
most of the time in per-call overhead). Explanations are seeded: the same face gives the same heatmap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .model import CLASSES, EmotionModel, preprocess
from .records import Explanation


@dataclass
class LimeSettings:
    """The seed's LIME settings: 1000 samples, top labels, 10 features, positive and negative evidence."""

    num_samples: int = 1000
    top_labels: int = 6
    num_features: int = 10
    positive_only: bool = False
    hide_color: float | None = None  # lime's default: a hidden superpixel takes its mean colour
    seed: int = 0
    batch_size: int | None = None  # None: every perturbation in one predict call
    # Superpixels. lime's default (quickshift, max_dist=200) finds 1-3 segments in a 48x48 face, which
    # explains nothing; SLIC gives ~45 compact, edge-following segments (eyes, brows, mouth corners).
    n_segments: int = 50
    compactness: float = 20.0
    tta: bool = False  # explain the network on the face as it is (see classifier_fn)

    def segmenter(self):
        from lime.wrappers.scikit_image import SegmentationAlgorithm

        return SegmentationAlgorithm(
            "slic", n_segments=self.n_segments, compactness=self.compactness, start_label=0
        )


def _quiet(iterable, *args, **kwargs):
    return iterable


def classifier_fn(model: EmotionModel, tta: bool = False):
    """LIME hands us RGB perturbations of a grayscale crop; channel 0 is the gray image.

    Without the mirror-image average by default: hiding a superpixel also hides its mirror image's
    evidence in the flipped copy, so LIME would credit a region with what the network saw on the other
    side of the face. The network on the face as it is keeps each weight tied to its place (and halves
    the cost). ``LimeSettings(tta=True)`` explains the averaged classifier instead.
    """

    def predict(images: np.ndarray) -> np.ndarray:
        gray = np.asarray(images)[..., 0]
        if gray.dtype != np.uint8:
            gray = np.clip(gray, 0, 255).astype(np.uint8)
        return model.predict_scaled(preprocess(gray), batch_size=4096, tta=tta)

    return predict


def explain_face(
    model: EmotionModel,
    crop: np.ndarray,
    labels: Sequence[str] | None = None,
    settings: LimeSettings | None = None,
) -> dict[str, Explanation]:
    """LIME explanations of one uint8 48x48 face, keyed by class name.

    ``labels`` names the classes to explain (e.g. predicted and true class in an audit); by default the
    ``top_labels`` most probable ones are explained.
    """
    from lime import lime_image
    from skimage.color import gray2rgb
    from skimage.segmentation import mark_boundaries

    lime_image.tqdm = _quiet  # lime 0.2.0.1 draws a progress bar per face on stderr; ours is per batch
    s = settings or LimeSettings()
    image = gray2rgb(np.asarray(crop, np.uint8))
    explainer = lime_image.LimeImageExplainer(random_state=s.seed)
    wanted = None if labels is None else [model.classes.index(lb) for lb in labels]
    exp = explainer.explain_instance(
        image, classifier_fn(model, s.tta),
        labels=tuple(wanted) if wanted else (),
        top_labels=None if wanted else s.top_labels,
        hide_color=s.hide_color,
        num_samples=s.num_samples,
        batch_size=s.batch_size or s.num_samples,
        random_seed=s.seed,
        segmentation_fn=s.segmenter(),
    )
    segments = exp.segments
    out: dict[str, Explanation] = {}
    for idx in wanted or exp.top_labels:
        weights = {int(seg): float(w) for seg, w in exp.local_exp[idx]}
        lut = np.zeros(segments.max() + 1, np.float32)
        for seg, w in weights.items():
            lut[seg] = w
        temp, mask = exp.get_image_and_mask(
            idx, positive_only=s.positive_only, num_features=s.num_features, hide_rest=False
        )
        boundaries = (mark_boundaries(temp / 255.0, mask) * 255).astype(np.uint8)
        out[model.classes[idx]] = Explanation(
            label=model.classes[idx], segments=segments, weights=weights, heatmap=lut[segments],
            boundaries=boundaries, score=float(exp.score[idx]) if isinstance(exp.score, dict) else float(exp.score),
        )
    return out


def explain_faces(
    model: EmotionModel,
    crops: Sequence[np.ndarray],
    labels: Sequence[Sequence[str] | None] | None = None,
    settings: LimeSettings | None = None,
    n_jobs: int = 2,
) -> list[dict[str, Explanation]]:
    """Explain many faces in parallel with joblib threads.

    Threads, not processes: TensorFlow releases the GIL during a forward pass, so two explanations overlap
    on two cores while sharing one loaded model (no per-process model load, no pickling of arrays).
    """
    from joblib import Parallel, delayed

    labels = labels or [None] * len(crops)
    if n_jobs == 1 or len(crops) <= 1:
        return [explain_face(model, c, lb, settings) for c, lb in zip(crops, labels)]
    return Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(explain_face)(model, c, lb, settings) for c, lb in zip(crops, labels)
    )


def heatmap_image(crop: np.ndarray, heatmap: np.ndarray, size: int = 144, alpha: float = 0.55) -> np.ndarray:
    """The face in gray under a diverging colour map of LIME weights: green for, red against the class.

    Scaled symmetrically by the largest absolute weight, so white/neutral means no evidence either way.
    """
    import cv2

    face = cv2.resize(np.asarray(crop, np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    face_rgb = np.stack([face] * 3, -1).astype(np.float32)
    hm = cv2.resize(heatmap.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
    peak = float(np.abs(hm).max())
    v = hm / peak if peak > 0 else hm
    pos, neg = np.clip(v, 0, 1)[..., None], np.clip(-v, 0, 1)[..., None]
    colour = pos * np.array([0, 200, 60], np.float32) + neg * np.array([230, 30, 30], np.float32)
    strength = alpha * np.maximum(pos, neg)
    out = face_rgb * (1 - strength) + colour * strength
    return np.clip(out, 0, 255).astype(np.uint8)


__all__ = ["LimeSettings", "explain_face", "explain_faces", "heatmap_image", "CLASSES"]
