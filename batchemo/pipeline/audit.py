"""Auditing a model on a labelled set: where it goes wrong, how sure it was, and what it looked at.

Builds on ``evaluate`` (metrics, confusion, per-face table) and on LIME (``explain``): the gallery explains
each selected mistake twice, for the class the model chose and for the true one, so a person can compare
the evidence. Everything here is computed, nothing written; ``report.audit`` renders it and the CLI writes
the table (``AuditResult.evaluation.table()``).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..core.records import CLASSES, Explanation
from ..emotions.calibration import ReliabilityBin, expected_calibration_error, reliability_bins  # noqa: F401 (re-exported)
from ..emotions.evaluate import Evaluation
from ..emotions.model import EmotionModel, ModelError, load_model
from ..emotions.tta import way as tta_way
from ..explain.lime import LIME_SAMPLES, LimeSettings
from ..sources.labelled import LabelledSet, load_split


# ---------------------------------------------------------------- mistakes (pure functions)
def mistake_pairs(labels: np.ndarray, probabilities: np.ndarray) -> list[tuple[tuple[int, int], list[int]]]:
    """Mistakes grouped by (true, predicted) class index, largest group first (ties in class order).

    Within a group, the most confident mistakes come first: those are the ones worth a person's look.
    """
    labels = np.asarray(labels)
    probs = np.asarray(probabilities)
    pred = probs.argmax(1) if len(probs) else np.zeros(0, np.int64)
    groups: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(pred != labels):
        groups.setdefault((int(labels[i]), int(pred[i])), []).append(int(i))
    for key, members in groups.items():
        members.sort(key=lambda i: (-float(probs[i, key[1]]), i))
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def select_mistakes(pairs: list[tuple[tuple[int, int], list[int]]], cap: int) -> list[int]:
    """Up to ``cap`` mistakes taken round-robin over ``pairs`` (as ``mistake_pairs`` orders them).

    Round-robin spreads a small budget over many kinds of confusion instead of spending it all on the
    most common pair, while the ordering still favours large pairs and confident mistakes.
    """
    chosen: list[int] = []
    depth = 0
    while len(chosen) < cap:
        row = [members[depth] for _, members in pairs if depth < len(members)]
        if not row:
            break
        chosen += row[: cap - len(chosen)]
        depth += 1
    return chosen


# ---------------------------------------------------------------- result records
@dataclass
class Mistake:
    """One misclassified face, with LIME's evidence for the predicted and for the true class."""

    index: int  # row of the face in the evaluation (and the CSV)
    source: str
    true: str
    predicted: str
    p_predicted: float
    p_true: float
    face: np.ndarray  # uint8 (48, 48)
    explanations: dict[str, Explanation] = field(default_factory=dict)  # keyed by class name
    votes: dict[str, int] = field(default_factory=dict)  # FER+ votes by emotion (and contempt, unknown, nf)
    verdict: str = ""  # a key of votes.VERDICTS; "" without votes


@dataclass
class MistakeGroup:
    """All mistakes of one (true, predicted) pair; ``shown`` are the explained ones, most confident first."""

    true: str
    predicted: str
    count: int
    support: int  # faces of the true class, so count / support is the confusion rate
    shown: list[Mistake] = field(default_factory=list)
    disputed: int = 0  # of ``count``, the mistakes where most people chose the model's label


@dataclass
class SampleItem:
    """One face of the seeded random sample (the seed's "test on random validation images" view)."""

    index: int
    source: str
    true: str
    predicted: str
    confidence: float
    face: np.ndarray  # uint8 (48, 48)

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


@dataclass
class AuditResult:
    """Everything the audit report shows; ``evaluation`` holds every face's probabilities."""

    evaluation: Evaluation
    origin: str
    bins: list[ReliabilityBin]
    ece: float
    groups: list[MistakeGroup]  # every confused pair, largest first
    sample: list[SampleItem]
    skipped: list[tuple[str, str]]  # (source, reason) of files that could not be read
    model_name: str
    model_card: dict
    tta: str  # how labels read a face (batchemo.tta)
    settings: dict
    timings: dict[str, float]  # seconds per stage: load, predict, explain, total
    votes: np.ndarray | None = None  # (N, 10) FER+ votes of every face, when given
    verdicts: np.ndarray | None = None  # (N,) a key of votes.VERDICTS per mistake, "" elsewhere

    @property
    def accuracy(self) -> float:
        return self.evaluation.accuracy

    @property
    def people_accuracy(self) -> float:
        """Accuracy against the FER+ majority, on faces with a clear one (nan without votes)."""
        if self.votes is None:
            return float("nan")
        from ..sources.votes import vote_scores

        return vote_scores(self.votes, self.evaluation.probabilities).majority_accuracy

    def verdict_counts(self) -> dict[str, int]:
        """{verdict: mistakes} over every mistake ({} without votes)."""
        if self.verdicts is None:
            return {}
        from ..sources.votes import VERDICTS

        return {k: int((self.verdicts == k).sum()) for k in VERDICTS}

    def table(self):
        """One row per face (``evaluation.table()``), with the FER+ vote columns when votes were given."""
        df = self.evaluation.table()
        if self.votes is not None:
            from ..sources.votes import FERPLUS_COLUMNS, distribution, majority

            major = majority(self.votes)
            dist = distribution(self.votes)
            rows = np.arange(len(df))
            df["people_label"] = [CLASSES[k] if k >= 0 else "" for k in major]
            df["people_agree_true"] = dist[rows, self.evaluation.labels]
            df["people_agree_predicted"] = dist[rows, self.evaluation.predictions]
            df["verdict"] = self.verdicts
            for j, name in enumerate(FERPLUS_COLUMNS):
                df[f"votes_{name}"] = self.votes[:, j]
        return df

    @property
    def macro_f1(self) -> float:
        return self.evaluation.macro_f1

    @property
    def mistakes(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def explained(self) -> list[Mistake]:
        return [m for g in self.groups for m in g.shown]


# ---------------------------------------------------------------- the audit
def _model_name(model) -> str:
    path = getattr(model, "path", None)
    return str(path) if path else getattr(getattr(model, "card", None), "architecture", "") or type(model).__name__


@dataclass
class AuditOptions:
    """How an audit runs: ``max_explanations`` mistakes explained with LIME (``lime_samples`` perturbations
    each, ``jobs`` at once), ``sample`` faces drawn at random with ``seed``; ``log`` takes progress lines."""

    max_explanations: int = 50
    sample: int = 24
    seed: int = 0
    lime_samples: int = LIME_SAMPLES
    jobs: int = 2
    log: Callable[[str], None] | None = None
    progress: bool = True

    def __post_init__(self):
        for key, least in (("max_explanations", 0), ("sample", 0), ("lime_samples", 1), ("jobs", 1)):
            if getattr(self, key) < least:
                raise ValueError(f"{key} must be at least {least}, got {getattr(self, key)}")

    def say(self, msg: str) -> None:
        if self.log is not None:
            self.log(msg)

    def settings(self) -> dict:
        return {k: getattr(self, k) for k in ("max_explanations", "sample", "seed", "lime_samples", "jobs")}


def audit(data: str | os.PathLike | LabelledSet, model: EmotionModel | str | os.PathLike | None = None,
          split: str | None = None, options: AuditOptions | None = None, votes: str | os.PathLike | None = None,
          **fields) -> AuditResult:
    """Score ``model`` on the labelled set ``data`` and collect what the audit report shows.

    ``data`` is a folder (``<class>/`` folders, or one holding ``validation/``), a fer2013.csv (``split``
    picks its Usage: PublicTest by default, PrivateTest or Training) or an already loaded LabelledSet.
    ``model`` is a loaded model or a .keras path (None: the shipped model). The metrics come from
    ``evaluate``; mistakes are explained with LIME for the predicted and the true class. ``options`` (or
    its fields as keywords: ``max_explanations=``, ``sample=``, ``seed=``, ``lime_samples=``, ``jobs=``,
    ``log=``, ``progress=``) say how much. ``votes``: a FER+ votes CSV for the set's faces, so that each
    mistake says whether most people side with the data set's label or with the model's.
    """
    from ..emotions.evaluate import evaluate

    opts = AuditOptions(**fields) if options is None else options
    t0 = time.perf_counter()
    labelled, model = _inputs(data, split, model)
    if votes is not None:
        from ..sources.votes import match

        labelled.votes = match(labelled.sources, votes)
    t_load = time.perf_counter()
    opts.say(f"predicting {len(labelled)} faces from {labelled.origin}")
    ev = evaluate(model, labelled)
    conf = ev.probabilities.max(1) if len(ev.labels) else np.zeros(0)
    right = ev.predictions == ev.labels
    t_pred = time.perf_counter()
    pairs = mistake_pairs(ev.labels, ev.probabilities)
    verdict = None
    if labelled.votes is not None:
        from ..sources.votes import verdicts

        verdict = verdicts(labelled.votes, ev.labels, ev.predictions)
    explained = _explain_mistakes(model, labelled, ev, pairs, opts)
    t_explain = time.perf_counter()
    card = getattr(model, "card", None)
    return AuditResult(
        evaluation=ev, origin=labelled.origin, bins=reliability_bins(conf, right),
        ece=expected_calibration_error(conf, right), groups=_groups(ev, labelled, pairs, explained, verdict),
        sample=_sample(ev, labelled, conf, opts), skipped=list(labelled.skipped), model_name=_model_name(model),
        model_card=dict(card.__dict__) if card is not None else {}, tta=tta_way(getattr(model, "tta", False)),
        settings=opts.settings(),
        timings={"load": t_load - t0, "predict": t_pred - t_load, "explain": t_explain - t_pred,
                 "total": time.perf_counter() - t0},
        votes=labelled.votes, verdicts=verdict,
    )


def _inputs(data, split, model) -> tuple[LabelledSet, EmotionModel]:
    """The labelled set and the loaded model, checked against each other."""
    if isinstance(data, LabelledSet):
        labelled = data
    else:
        if split is not None and not os.path.isfile(data):
            raise ValueError(f"{data}: --split selects rows of a fer2013.csv; this is a folder")
        labelled = load_split(data, "validation", split=split)
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if sorted(getattr(model, "classes", ())) != sorted(CLASSES):
        raise ModelError(f"{_model_name(model)}: the model's classes {list(getattr(model, 'classes', ()))} do "
                         f"not match the data's {list(CLASSES)}")
    return labelled, model


def _explain_mistakes(model, labelled: LabelledSet, ev: Evaluation, pairs, opts: AuditOptions) -> dict:
    """{face index: its explanations} for the mistakes ``select_mistakes`` picks, predicted and true class."""
    from ..explain.classify import classify

    chosen = select_mistakes(pairs, opts.max_explanations)
    if not chosen:
        return {}
    pred = ev.predictions
    opts.say(f"explaining {len(chosen)} of {sum(len(m) for _, m in pairs)} mistakes with LIME, for the predicted "
             f"and the true class ({opts.lime_samples} samples each, {opts.jobs} at once)")
    _, explanations = classify(
        model, labelled.images[chosen], LimeSettings(num_samples=opts.lime_samples, seed=opts.seed),
        also_explain=[[CLASSES[pred[i]], CLASSES[ev.labels[i]]] for i in chosen], n_jobs=opts.jobs,
        progress=opts.progress,
    )
    return dict(zip(chosen, explanations))


def _groups(ev: Evaluation, labelled: LabelledSet, pairs, explained: dict, verdict=None) -> list[MistakeGroup]:
    """One MistakeGroup per (true, predicted) pair, holding its explained mistakes (with their votes and
    verdicts when ``verdict``, (N,) votes.verdicts, is given)."""
    from ..sources.votes import FERPLUS_COLUMNS

    support = np.bincount(ev.labels, minlength=len(CLASSES))
    groups = []
    for (t, p), members in pairs:
        shown = [
            Mistake(index=i, source=ev.sources[i], true=CLASSES[t], predicted=CLASSES[p],
                    p_predicted=float(ev.probabilities[i, p]), p_true=float(ev.probabilities[i, t]),
                    face=labelled.images[i], explanations=explained[i],
                    votes={} if labelled.votes is None else dict(zip(FERPLUS_COLUMNS, map(int, labelled.votes[i]))),
                    verdict="" if verdict is None else str(verdict[i]))
            for i in members if i in explained
        ]
        disputed = 0 if verdict is None else int(sum(verdict[i] == "disputed_label" for i in members))
        groups.append(MistakeGroup(CLASSES[t], CLASSES[p], len(members), int(support[t]), shown, disputed))
    return groups


def _sample(ev: Evaluation, labelled: LabelledSet, conf: np.ndarray, opts: AuditOptions) -> list[SampleItem]:
    """``opts.sample`` faces drawn at random (seeded), with their predicted and true labels."""
    n = len(ev.labels)
    drawn = np.random.default_rng(opts.seed).choice(n, size=min(opts.sample, n), replace=False) if opts.sample else []
    pred = ev.predictions
    return [SampleItem(index=int(i), source=ev.sources[i], true=CLASSES[ev.labels[i]], predicted=CLASSES[pred[i]],
                       confidence=float(conf[i]), face=labelled.images[i]) for i in drawn]


__all__ = [
    "AuditOptions", "AuditResult", "Mistake", "MistakeGroup", "ReliabilityBin", "SampleItem", "audit",
    "expected_calibration_error", "mistake_pairs", "reliability_bins", "select_mistakes",
]
