"""FER+ votes: ten people's labels for each FER2013 face, matched to a labelled set and turned into the
7-class distributions batchemo trains on and the figures it reports (majority, agreement, cross-entropy).

FER+ (Barsoum et al. 2016, MIT, Microsoft) asked 10 people to label every FER2013 face with one of
neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown or "not a face". batchemo
has no contempt class, so a face's distribution is its seven emotions' votes, renormalised: contempt,
unknown and not-a-face votes say "none of these", which no 7-class label can follow. A face with no
emotion vote at all (FER+ drops those, 173 of 32,298) carries no distribution and is left out of training
and of every vote figure.

Two files are read: batchemo's ``ferplus-votes.csv`` (a ``file`` column naming each JPEG, matched to a
folder set by the image's class folder and file name) and FER+'s own ``fer2013new.csv`` (``Usage``, ``Image name``, one
row per line of Kaggle's ``fer2013.csv``, matched by line).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.records import CLASSES

#: FER+'s vote columns, in its own order (``nf``: not a face).
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                   "contempt", "unknown", "nf")
#: FER+'s emotion names in batchemo's words; contempt, unknown and nf have none.
FERPLUS_TO_CLASS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                    "anger": "angry", "disgust": "disgust", "fear": "fear"}
#: FER+'s original file calls not-a-face "NF"; batchemo's copy "nf".
_ALIASES = {"nf": "nf", "not a face": "nf", "not_a_face": "nf"}


class VotesError(ValueError):
    """A votes file that cannot be used with a data set; the message names the file (and line) and why."""


def read_votes(path: str | os.PathLike) -> "tuple[dict[str, np.ndarray] | None, np.ndarray | None]":
    """(by name, by line) from a votes CSV: ``{file name: (10,) counts}`` when it names files, else
    ``(N, 10)`` counts in row order (FER+'s ``fer2013new.csv``: row i is line i + 2 of ``fer2013.csv``)."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise VotesError(f"{path}: cannot read the votes CSV ({e})") from None
    df.columns = [_ALIASES.get(str(c).strip().lower(), str(c).strip().lower()) for c in df.columns]
    missing = [c for c in FERPLUS_COLUMNS if c not in df.columns]
    if missing:
        raise VotesError(f"{path}: no column(s) {', '.join(missing)} (FER+ votes: {', '.join(FERPLUS_COLUMNS)})")
    counts = _counts(df, path)
    if "file" not in df.columns:
        return None, counts
    for depth in (2, 3):  # class folder and file name; with the split folder too where those repeat
        names = [_key(str(f), depth) for f in df["file"]]
        by_name = dict(zip(names, counts))
        if len(by_name) == len(names):
            return by_name, None
    raise VotesError(f"{path}: the same split, class folder and file name are listed twice, so faces cannot be "
                     f"matched by name")


def _key(path: str, depth: int = 2) -> str:
    """A face's name for matching: its last ``depth`` path parts, lower case: the class folder and file name
    (FER2013 reuses a few file names across classes, never within one), with the split folder at depth 3."""
    parts = path.replace("\\", "/").lower().split("/")
    return "/".join(parts[-depth:])


def _counts(df, path: Path) -> np.ndarray:
    """(N, 10) int vote counts, checked: whole numbers from 0 to 10 (the line named otherwise)."""
    import pandas as pd

    block = df[list(FERPLUS_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(block) | (block < 0) | (block > 10) | (block != np.round(block))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise VotesError(f"{path}:{row + 2}: column {FERPLUS_COLUMNS[col]!r} holds "
                         f"{df[FERPLUS_COLUMNS[col]].iloc[row]!r}, not a vote count 0-10")
    return block.astype(np.int16)


def match(sources: list[str], path: str | os.PathLike) -> np.ndarray:
    """(N, 10) votes for a labelled set's ``sources`` (file paths, or ``fer2013.csv:LINE``); every face
    must be found, else VotesError names the first that is not."""
    by_name, by_line = read_votes(path)
    out = np.zeros((len(sources), len(FERPLUS_COLUMNS)), np.int16)
    for i, src in enumerate(sources):
        if by_name is not None:
            depth = len(next(iter(by_name), "").split("/"))
            found = by_name.get(_key(src, depth))
        else:
            head, _, line = src.rpartition(":")
            row = int(line) - 2 if head and line.isdigit() else -1
            found = by_line[row] if 0 <= row < len(by_line) else None
        if found is None:
            raise VotesError(f"{path}: no votes for {src} (is it the votes file of this data set?)")
        out[i] = found
    return out


def distribution(votes: np.ndarray) -> np.ndarray:
    """(N, 7) float32 share of each of batchemo's CLASSES among a face's emotion votes, from (N, 10)
    counts; all zero where nobody chose an emotion."""
    v = np.asarray(votes, np.float64)
    emo = np.zeros((len(v), len(CLASSES)))
    for j, name in enumerate(FERPLUS_COLUMNS):
        if name in FERPLUS_TO_CLASS:
            emo[:, CLASSES.index(FERPLUS_TO_CLASS[name])] = v[:, j]
    total = emo.sum(1, keepdims=True)
    return np.divide(emo, total, out=np.zeros_like(emo), where=total > 0).astype(np.float32)


def has_emotion(votes: np.ndarray) -> np.ndarray:
    """(N,) bool: at least one of the ten chose one of the seven emotions."""
    return distribution(votes).sum(1) > 0


def majority(votes: np.ndarray) -> np.ndarray:
    """(N,) int64 index into CLASSES of the FER+ majority label, -1 where FER+ leaves the face out of its
    majority figures: a tie for the most votes, or contempt, unknown or not-a-face with the most."""
    v = np.asarray(votes)
    top = v.max(1)
    clear = (v == top[:, None]).sum(1) == 1
    arg = v.argmax(1)
    to_class = np.array([CLASSES.index(FERPLUS_TO_CLASS[n]) if n in FERPLUS_TO_CLASS else -1 for n in FERPLUS_COLUMNS])
    return np.where(clear, to_class[arg], -1).astype(np.int64)


def agreement(votes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) float: the share of a face's emotion votes that chose ``labels`` (indices into CLASSES)."""
    dist = distribution(votes)
    return dist[np.arange(len(dist)), np.asarray(labels, np.int64)]


def cross_entropy(votes: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean cross-entropy in nats of the faces' vote distributions under (N, 7) ``probabilities``, over
    faces with emotion votes. The same with ``probabilities`` = the distribution itself is the floor."""
    dist = distribution(votes)
    keep = dist.sum(1) > 0
    p = np.clip(np.asarray(probabilities, np.float64)[keep], 1e-7, 1.0)
    return float(-(dist[keep] * np.log(p)).sum(1).mean()) if keep.any() else float("nan")


@dataclass(frozen=True)
class AgreementBand:
    """Faces whose confidence falls in [lower, upper): how sure the model was, and how many people agreed."""

    lower: float
    upper: float
    count: int
    confidence: float  # mean top-class probability (nan when empty)
    agreement: float  # mean share of the face's emotion votes that chose the model's label (nan when empty)

    @property
    def gap(self) -> float:
        """Over-confidence: positive when the model is surer than people agree with it."""
        return self.confidence - self.agreement


#: Width of an agreement band: "90-100% sure", "70-80% sure".
BAND_WIDTH = 0.1
#: A band must hold this many faces for its gap to count (fewer: one face moves it by over a point).
BAND_MIN_FACES = 100
#: "Most people agree": at least this many of the ten chose the label.
STRONG_VOTES = 6


def agreement_bands(votes: np.ndarray, probabilities: np.ndarray, width: float = BAND_WIDTH) -> list[AgreementBand]:
    """Bands of confidence [k w, (k + 1) w) over faces with emotion votes (the last band holds 1.0)."""
    dist = distribution(votes)
    keep = dist.sum(1) > 0
    p = np.asarray(probabilities, np.float64)[keep]
    conf, agree = p.max(1), dist[keep][np.arange(keep.sum()), p.argmax(1)]
    n = int(round(1 / width))
    which = np.clip(np.floor(conf / width + 1e-9).astype(np.int64), 0, n - 1)
    bands = []
    for k in range(n):
        m = which == k
        c = int(m.sum())
        bands.append(AgreementBand(k * width, (k + 1) * width, c, float(conf[m].mean()) if c else float("nan"),
                                   float(agree[m].mean()) if c else float("nan")))
    return bands


@dataclass(frozen=True)
class VoteScores:
    """A model's figures against people on one set of faces (``vote_scores``)."""

    faces: int  # faces with at least one emotion vote
    majority_faces: int  # faces with a clear FER+ majority (``majority``)
    majority_accuracy: float  # the model's label is the majority's
    strong_faces: int  # faces where at least STRONG_VOTES of the ten chose one emotion
    strong_accuracy: float
    cross_entropy: float  # nats: the vote distribution under the model's probabilities
    floor: float  # nats: the votes' own entropy, the least any model can reach
    bands: list[AgreementBand]

    @property
    def worst_gap(self) -> float:
        """The largest |confidence - agreement| over bands of at least BAND_MIN_FACES faces."""
        gaps = [abs(b.gap) for b in self.bands if b.count >= BAND_MIN_FACES]
        return max(gaps) if gaps else float("nan")

    def as_dict(self) -> dict:
        """Rounded figures for a model card."""
        return {"faces": self.faces, "majority_faces": self.majority_faces,
                "majority_accuracy": round(self.majority_accuracy, 4), "strong_faces": self.strong_faces,
                "strong_accuracy": round(self.strong_accuracy, 4), "cross_entropy": round(self.cross_entropy, 4),
                "floor": round(self.floor, 4), "worst_band_gap": round(self.worst_gap, 4),
                "bands": [[round(b.lower, 2), b.count, round(b.confidence, 4), round(b.agreement, 4)]
                          for b in self.bands if b.count]}


def vote_scores(votes: np.ndarray, probabilities: np.ndarray) -> VoteScores:
    """Majority accuracy, accuracy where most people agree, vote cross-entropy and agreement bands of (N, 7)
    ``probabilities`` (CLASSES order) against (N, 10) ``votes``."""
    votes = np.asarray(votes)
    p = np.asarray(probabilities, np.float64)
    pred = p.argmax(1)
    major = majority(votes)
    clear = major >= 0
    strong = clear & (votes.max(1) >= STRONG_VOTES)
    dist = distribution(votes)
    acc = lambda m: float((pred[m] == major[m]).mean()) if m.any() else float("nan")  # noqa: E731
    return VoteScores(
        faces=int((dist.sum(1) > 0).sum()), majority_faces=int(clear.sum()), majority_accuracy=acc(clear),
        strong_faces=int(strong.sum()), strong_accuracy=acc(strong), cross_entropy=cross_entropy(votes, p),
        floor=cross_entropy(votes, dist), bands=agreement_bands(votes, p))


def temper(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities softened (T > 1) or sharpened (T < 1): softmax(log p / T), rows of (N, 7)."""
    if temperature == 1.0:
        return probabilities
    logp = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)) / temperature
    logp -= logp.max(-1, keepdims=True)
    e = np.exp(logp)
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def fit_temperature(votes: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature under which the faces' vote distributions are likeliest (least cross-entropy)."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda log_t: cross_entropy(votes, temper(probabilities, float(np.exp(log_t)))),
                          bounds=(np.log(0.25), np.log(4.0)), method="bounded")
    return round(float(np.exp(res.x)), 4)


#: An audit's verdict on a mistake (the model's label is not the data set's), from the ten people's votes.
VERDICTS = {
    "disputed_label": "most people chose the model's label: the data set's label is disputed",
    "model_error": "most people chose the data set's label: the model is wrong",
    "other": "most people chose a third emotion: both labels are disputed",
    "no_majority": "the ten people have no clear majority",
}


def verdicts(votes: np.ndarray, labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """(N,) str: a key of VERDICTS for each face whose prediction is not its label, "" for the others."""
    major = majority(votes)
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    out = np.where(major < 0, "no_majority", np.where(major == predictions, "disputed_label",
                   np.where(major == labels, "model_error", "other")))
    return np.where(predictions == labels, "", out).astype(object)
