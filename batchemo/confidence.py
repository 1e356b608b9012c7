"""Doubt, in one place: when a label is uncertain, what a person's headline emotion is, and how far a
heatmap can be trusted. Reports, tables and people all call these, so they never disagree.

The thresholds are measured on FER2013's validation split with the shipped model read as its card says
(``benchmarks/doubt_quality.py``; figures in docs/report.md).
"""
from __future__ import annotations

import numpy as np

#: A label the model gives less than this probability is marked uncertain. On FER2013 validation (shipped
#: model, rot5 reads) it marks 17.0% of faces, whose labels are right 41.4% of the time against 77.2% for the
#: rest; a margin rule (top-1 minus top-2 < 0.2) marks as many at the same accuracy, and is harder to say.
UNCERTAIN_CONFIDENCE = 0.5
#: A person's headline is "mixed" when their mean probabilities' top class leads the next by less than this.
MIXED_MARGIN = 0.15
MIXED = "mixed"
#: Faithfulness verdicts, from LIME's heatmaps of 100 FER2013 validation faces (median 0.33, quartiles
#: 0.27-0.38, deciles 0.21 ... 0.46): "weak" below the lowest decile (worse than nine in ten of them), "strong"
#: from the top fifth on, "fair" between. Measured: benchmarks/doubt_quality.py, docs/report.md.
FAITHFULNESS_WEAK = 0.2
FAITHFULNESS_STRONG = 0.4


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


def headline(mean_probabilities: dict[str, float]) -> str:
    """A person's headline emotion from their mean probability per class: the top class, or MIXED when it
    leads the next by less than MIXED_MARGIN (nothing dominates)."""
    if not mean_probabilities:
        return ""
    ranked = sorted(mean_probabilities.items(), key=lambda kv: -kv[1])
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < MIXED_MARGIN:
        return MIXED
    return ranked[0][0]


def faithfulness_verdict(value) -> str:
    """"weak", "fair" or "strong" for a faithfulness score, "" when there is none (NaN / None)."""
    if value is None or value != value:
        return ""
    if value < FAITHFULNESS_WEAK:
        return "weak"
    return "strong" if value >= FAITHFULNESS_STRONG else "fair"


#: One line per word a report uses that a reader may not know (tooltips and legends).
GLOSSARY = {
    "uncertain": f"the model gives this label less than {UNCERTAIN_CONFIDENCE:.0%} probability; such labels "
                 "were right only 41% of the time on held-out faces (77% for the others): read it as a guess",
    "mixed": f"no emotion leads this person's average by {MIXED_MARGIN:.0%} or more",
    "faithfulness": "how much better than random regions the heatmap explains the label: "
                    f"weak below {FAITHFULNESS_WEAK}, strong from {FAITHFULNESS_STRONG}",
    "LIME": "an explanation method: it hides parts of the face and sees how the label changes",
    "heatmap": "green regions pushed the model towards the label, red ones away from it",
    "superpixels": "small patches of the face (eyes, brows, mouth corners) that LIME hides and shows",
    "LIME fit R²": "how well LIME's simple model matches the network near this face (1 = perfectly)",
    "TTA": "test-time augmentation: the face is read several times, slightly turned, and the reads averaged",
    "detector score": "how sure the face detector is that this is a face",
    "confidence": "the probability the model gives its top emotion",
    "validation accuracy": "share of FER2013's 3589 held-out faces the model labels correctly",
    "expected calibration error": "how far the model's stated confidence is from how often it is right, on average",
    "precision": "of the faces given this label, the share that truly show it",
    "recall": "of the faces that truly show this emotion, the share the model finds",
    "F1": "one number for precision and recall together (their harmonic mean)",
    "support": "how many faces of this class the set holds",
    "keyframe": "a sampled moment of a face worth showing: its most confident frames of each emotion",
    "smoothed": "probabilities averaged over the last seconds of a face, so a single odd frame does not flip its label",
    "face_id": "one face followed from frame to frame: the same number while the tracker keeps it",
}
