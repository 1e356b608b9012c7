"""Crops -> predictions (and explanations where asked): the one road every face takes.

Photos (engine), video frames (video) and labelled samples (evaluate, audit) all call ``classify``, so they
share the batching, the test-time augmentation the model card asks for, and the LIME label policy: the
class a face is labelled with is always the one explained, plus any class a caller names (the true class
in an audit). Explaining classes nobody is shown is wasted work, so nothing else is explained.
"""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np

from ..core.records import CLASSES, Explanation, Faces


def classify(
    model,
    crops: np.ndarray,
    explain=None,
    also_explain: Sequence[Sequence[str]] | None = None,
    n_jobs: int = 1,
    progress: bool = False,
) -> tuple[np.ndarray, list[dict[str, Explanation]] | None]:
    """Probabilities (N, 7) in CLASSES order for uint8 (N, 48, 48) crops, and LIME explanations if asked.

    ``explain``: LimeSettings, or None for no explanations. ``also_explain``: per face, classes to explain
    besides the predicted one. ``n_jobs``: explanations computed at once (threads share the model).
    ``progress``: a tqdm bar over the explanations, which are the slow part.
    """
    crops = np.asarray(crops)
    probs = model.predict(crops)
    if explain is None or len(crops) == 0:
        return probs, None
    from .lime import explain_faces

    labels, shown = [], probs.argmax(1)
    for k in range(len(probs)):
        wanted = [CLASSES[int(shown[k])]]
        for extra in (also_explain[k] if also_explain is not None else ()):
            if extra not in wanted:
                wanted.append(extra)
        labels.append(wanted)
    if not progress:
        return probs, explain_faces(model, list(crops), labels, explain, n_jobs=n_jobs, shown=shown)
    from tqdm.auto import tqdm

    exps: list[dict[str, Explanation]] = []
    step = max(1, 2 * n_jobs)
    with tqdm(total=len(crops), unit="face", desc="explaining", file=sys.stderr, leave=False) as bar:
        for i in range(0, len(crops), step):
            exps += explain_faces(model, list(crops[i: i + step]), labels[i: i + step], explain, n_jobs=n_jobs,
                                  shown=shown[i: i + step])
            bar.update(min(step, len(crops) - i))
    return probs, exps


def classify_faces(model, records: Sequence[Faces], explain=None, n_jobs: int = 1) -> list[Faces]:
    """Fill ``probabilities`` (and ``explanations``) of every record with one batched ``classify`` call.

    Batching across records matters for video: frames hold one or two faces each, and one forward pass of
    64 faces costs little more than one of a single face.
    """
    sizes = [len(r) for r in records]
    if sum(sizes):
        crops = np.concatenate([r.crops for r in records if len(r)])
        probs, exps = classify(model, crops, explain, n_jobs=n_jobs)
    else:
        probs, exps = np.zeros((0, len(CLASSES)), np.float32), None
    from ..emotions.readability import reasons

    k = 0
    for r, n in zip(records, sizes):
        r.unreadable = reasons(r.crops, r.boxes[:, 2]) if n else []
        r.probabilities = probs[k: k + n]
        r.explanations = exps[k: k + n] if exps is not None else None
        k += n
    return list(records)
