"""Scoring a model on a labelled set: accuracy, confusion matrix, scikit-learn's classification report.

Analysis only: ``report.evaluation`` writes the files of ``batchemo evaluate --out``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sources.labelled import LabelledSet
from .model import CLASSES, EmotionModel


@dataclass
class Evaluation:
    """Predictions of one model on one labelled set, and the metrics derived from them."""

    labels: np.ndarray  # (N,) true class indices
    probabilities: np.ndarray  # (N, 7) in CLASSES order
    sources: list[str]

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(1)

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean()) if len(self.labels) else float("nan")

    @property
    def confusion(self) -> np.ndarray:
        """(7, 7) counts, rows = true class, columns = predicted class."""
        from sklearn.metrics import confusion_matrix

        return confusion_matrix(self.labels, self.predictions, labels=range(len(CLASSES)))

    def report(self) -> dict:
        from sklearn.metrics import classification_report

        return classification_report(
            self.labels, self.predictions, labels=list(range(len(CLASSES))), target_names=list(CLASSES),
            output_dict=True, zero_division=0,
        )

    def report_text(self) -> str:
        from sklearn.metrics import classification_report

        return classification_report(
            self.labels, self.predictions, labels=list(range(len(CLASSES))), target_names=list(CLASSES),
            digits=4, zero_division=0,
        )

    def per_class_f1(self) -> dict[str, float]:
        rep = self.report()
        return {c: float(rep[c]["f1-score"]) for c in CLASSES}

    @property
    def macro_f1(self) -> float:
        return float(self.report()["macro avg"]["f1-score"])

    def table(self):
        """One row per face: source, true, predicted, confidence, the 7 probabilities, correct."""
        import pandas as pd

        pred = self.predictions
        df = pd.DataFrame(
            {
                "path": self.sources,
                "true_label": [CLASSES[i] for i in self.labels],
                "predicted_label": [CLASSES[i] for i in pred],
                "confidence": self.probabilities.max(1) if len(pred) else [],
            }
        )
        for j, c in enumerate(CLASSES):
            df[f"p_{c}"] = self.probabilities[:, j]
        df["correct"] = pred == self.labels
        return df


def evaluate(model: EmotionModel, data: LabelledSet) -> Evaluation:
    """Every face of ``data`` read as photos and video frames are (``model.predict``: the card's TTA and
    calibration)."""
    probs = model.predict(data.images)
    if probs.shape != (len(data), len(CLASSES)):
        from .model import ModelError

        raise ModelError(f"{getattr(model, 'name', model)}: predicted an array of shape {probs.shape}, "
                         f"expected ({len(data)}, {len(CLASSES)})")
    return Evaluation(data.labels, probs.astype(np.float32), data.sources)
