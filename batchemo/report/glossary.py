"""One line per word a report uses that a reader may not know (tooltips and legends).
"""
from __future__ import annotations

from ..emotions.doubt import UNCERTAIN_CONFIDENCE
from ..explain.faithfulness import FAITHFULNESS_STRONG, FAITHFULNESS_WEAK
from ..people.refs import MIXED_MARGIN

#: One line per word a report uses that a reader may not know (tooltips and legends).
GLOSSARY = {
    "uncertain": f"the model gives this label less than {UNCERTAIN_CONFIDENCE:.0%} probability, so fewer than half "
                 "of people would give it: on held-out faces 43% of people agreed with such labels (80% with the "
                 "others). Read it as a guess",
    "mixed": f"no emotion leads this person's share of faces by {MIXED_MARGIN:.0%} or more",
    "faithfulness": "how much better than random regions the heatmap explains the label: "
                    f"weak below {FAITHFULNESS_WEAK}, strong from {FAITHFULNESS_STRONG}",
    "LIME": "an explanation method: it hides parts of the face and sees how the label changes",
    "heatmap": "green regions pushed the model towards the label, red ones away from it",
    "superpixels": "small patches of the face (eyes, brows, mouth corners) that LIME hides and shows",
    "LIME fit R²": "how well LIME's simple model matches the network near this face (1 = perfectly)",
    "TTA": "test-time augmentation: the face is read several times, slightly turned, and the reads averaged",
    "detector score": "how sure the face detector is that this is a face",
    "confidence": "the probability the model gives its top emotion: about the share of people who would give "
                  "the face that label (checked against ten people per held-out face)",
    "validation accuracy": "share of FER2013's held-out faces given the emotion most of their ten FER+ raters chose",
    "expected calibration error": "how far the model's stated confidence is from how often it is right, on average",
    "precision": "of the faces given this label, the share that truly show it",
    "recall": "of the faces that truly show this emotion, the share the model finds",
    "F1": "one number for precision and recall together (their harmonic mean)",
    "support": "how many faces of this class the set holds",
    "keyframe": "a sampled moment of a face worth showing: its most confident frames of each emotion",
    "moment": "a time in a video worth jumping to: a person's strongest moment of an emotion, or a change of their "
              "mood (each emotion held at least a second and a half, on the smoothed timeline)",
    "smoothed": "probabilities averaged over the last seconds of a face, so a single odd frame does not flip its label",
    "face_id": "one face followed from frame to frame: the same number while the tracker keeps it",
}
