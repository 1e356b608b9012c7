"""Doubt about a label: when the emotion network's answer is to be read as a guess.

The threshold is measured against FER+'s ten votes per face (``benchmarks/ferplus_quality.py``): tables,
reports and people all call these, so they never disagree.
"""
from __future__ import annotations

import numpy as np

#: A label the model gives less than this probability is marked uncertain. On FER2013 validation (shipped
#: model, rot5 reads) it marks 17.0% of faces, whose labels are right 41.4% of the time against 77.2% for the
#: rest; a margin rule (top-1 minus top-2 < 0.2) marks as many at the same accuracy, and is harder to say.
UNCERTAIN_CONFIDENCE = 0.5


def margin(probabilities: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability, (N,) float, from (N, 7) probabilities (or (7,) -> a 0-d array)."""
    p = np.sort(np.asarray(probabilities, np.float64), axis=-1)
    return p[..., -1] - p[..., -2]


def is_uncertain(probabilities: np.ndarray) -> np.ndarray:
    """True where the label's probability is below UNCERTAIN_CONFIDENCE, (N,) bool from (N, 7)."""
    return np.asarray(probabilities, np.float64).max(-1) < UNCERTAIN_CONFIDENCE


def doubtful(faces) -> np.ndarray:
    """(n,) bool per face of a classified ``records.Faces``: its label is uncertain, or the face cannot be
    read (``readability``: too dark, blurred or small)."""
    flags = is_uncertain(faces.probabilities) if len(faces) else np.zeros(0, bool)
    if faces.unreadable is not None:
        flags = flags | np.array([bool(r) for r in faces.unreadable], bool)
    return flags


def uncertain_label(confidence) -> bool:
    """The same rule for one label's probability (a float): True when it should be read as a guess."""
    return confidence is not None and confidence == confidence and float(confidence) < UNCERTAIN_CONFIDENCE
