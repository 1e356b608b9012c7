"""Doubt about a label: when the emotion network's answer is to be read as a guess.

The threshold is measured against FER+'s ten votes per face (``benchmarks/ferplus_quality.py``): tables,
reports and people all call these, so they never disagree.
"""
from __future__ import annotations

import numpy as np

#: A label the model gives less than this probability is marked uncertain. The shipped model's probabilities
#: follow people (faces it gives 55% are labelled alike by about 55% of ten people), so below 0.5 fewer than
#: half would give its label. On FER2013 validation it marks 14.8% of faces: 43% of people agree with those
#: labels and the majority disagrees on 56%, against 80% agreeing with the rest. 0.4 marks only a third as
#: many; from 0.6 most marked labels are the people's majority too.
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
