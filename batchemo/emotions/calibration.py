"""Calibration: how sure a model was against how often it was right, over equal-width confidence bins.

One definition for every figure batchemo prints: the model card's ``ece`` (written at the end of training)
and the audit's reliability table and ECE are computed here, with the same ``ECE_BINS``.

Why 15 bins: it is the convention of Guo et al. 2017 ("On calibration of modern neural networks"), which
most published ECEs follow, so batchemo's figures compare with theirs; and every ECE already measured for
batchemo's models (the shipped card's and the docs' 0.042-0.085) was taken with 15 bins, so none of them
needs measuring again. On FER2013's 3,589 validation faces a bin of width 1/15 still holds ~100-700 faces
where the confidences lie (a 7-class top probability is at least 1/7).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Equal-width confidence bins of every ECE and reliability table batchemo writes.
ECE_BINS = 15


@dataclass(frozen=True)
class ReliabilityBin:
    """Faces whose confidence falls in (lower, upper]: how sure the model was, and how often it was right."""

    lower: float
    upper: float
    count: int
    confidence: float  # mean top-class probability in the bin (nan when empty)
    accuracy: float  # share of correct predictions in the bin (nan when empty)

    @property
    def gap(self) -> float:
        """Over-confidence: positive when the model is surer than it is right."""
        return self.confidence - self.accuracy


def reliability_bins(confidences: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1] of (N,) float confidences and (N,) bool correctness; bin k holds
    (k/n, (k+1)/n], the first also holds 0."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    conf = np.asarray(confidences, np.float64).ravel()
    ok = np.asarray(correct, bool).ravel()
    if conf.shape != ok.shape:
        raise ValueError(f"confidences and correct differ in length ({conf.size} vs {ok.size})")
    which = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    bins = []
    for k in range(n_bins):
        members = which == k
        n = int(members.sum())
        bins.append(ReliabilityBin(
            lower=k / n_bins, upper=(k + 1) / n_bins, count=n,
            confidence=float(conf[members].mean()) if n else float("nan"),
            accuracy=float(ok[members].mean()) if n else float("nan"),
        ))
    return bins


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over the reliability bins (nan for no faces)."""
    bins = reliability_bins(confidences, correct, n_bins)
    total = sum(b.count for b in bins)
    if total == 0:
        return float("nan")
    return float(sum(b.count * abs(b.accuracy - b.confidence) for b in bins if b.count) / total)


def probabilities_ece(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of (N, K) class probabilities against (N,) int true class indices: the top class is the answer."""
    probs = np.asarray(probabilities)
    if len(probs) == 0:
        return float("nan")
    return expected_calibration_error(probs.max(1), probs.argmax(1) == np.asarray(labels), n_bins)
