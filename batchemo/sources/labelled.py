"""Labelled face datasets: the seed's folder layout and Kaggle's fer2013.csv, as uint8 arrays + CLASSES indices.

Shared by train, evaluate and audit, which is why it is its own module rather than part of train.py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.records import CLASSES, INPUT_SIZE
from .walk import IMAGE_EXTENSIONS

#: Folder names tried, in order, for each role of a split.
SPLIT_FOLDERS = {"train": ("train", "training"), "validation": ("validation", "val", "test", "publictest")}
#: fer2013.csv ``Usage`` values for each role.
CSV_USAGE = {"train": "Training", "validation": "PublicTest", "test": "PrivateTest"}


#: Folder-name spellings accepted for a class (case-insensitive); the seed spells neutral "natural".
CLASS_ALIASES: dict[str, str] = {"natural": "neutral"}

#: FER2013's own label order in fer2013.csv (0=angry … 6=neutral), mapped onto CLASSES by name.
FER2013_CSV_ORDER: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

def class_index(name: str) -> int:
    """Index in CLASSES of a dataset's class name (case-insensitive, aliases accepted); ValueError if unknown."""
    key = name.strip().lower()
    key = CLASS_ALIASES.get(key, key)
    try:
        return CLASSES.index(key)
    except ValueError:
        raise ValueError(
            f"unknown class {name!r}: expected one of {', '.join(CLASSES)} (or 'natural' for neutral)"
        ) from None


class DatasetError(Exception):
    """A labelled dataset that cannot be used; the message names the file or folder and the reason."""


@dataclass
class LabelledSet:
    """Faces with their true class. ``sources`` name each face (a file path, or ``file.csv:LINE``)."""

    images: np.ndarray  # uint8 (N, 48, 48)
    labels: np.ndarray  # int64 (N,), indices into CLASSES
    sources: list[str]
    origin: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    votes: np.ndarray | None = None  # int16 (N, 10) FER+ votes (batchemo.votes), when a votes file is given

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(CLASSES)}

    def subset(self, keep: np.ndarray) -> "LabelledSet":
        """The faces where ``keep`` ((N,) bool) is true, with their votes; ``skipped`` is kept whole."""
        idx = np.flatnonzero(keep)
        return LabelledSet(self.images[idx], self.labels[idx], [self.sources[i] for i in idx], self.origin,
                           self.skipped, None if self.votes is None else self.votes[idx])

    def targets(self) -> np.ndarray:
        """(N, 7) float32 training targets: the FER+ vote distribution where votes are known, else the
        one-hot label."""
        if self.votes is not None:
            from .votes import distribution

            return distribution(self.votes)
        return np.eye(len(CLASSES), dtype=np.float32)[self.labels]


def with_votes(data: LabelledSet, path: str | os.PathLike, role: str) -> LabelledSet:
    """``data`` with its FER+ votes (``batchemo.votes``), ready for ``role``: faces nobody gave an emotion
    are dropped; for validation, labels become the FER+ majority and faces without a clear one (a tie, or
    contempt/unknown/not-a-face most) are dropped, as FER+'s own figures do. Training (and role "votes", the
    faces every vote figure is measured on) keeps FER2013's labels, reported, not learned."""
    from .votes import VotesError, has_emotion, majority, match

    try:
        votes = match(data.sources, path)
    except VotesError as e:
        raise DatasetError(str(e)) from None
    out = LabelledSet(data.images, data.labels, data.sources, f"{data.origin} with votes {Path(path).name}",
                      data.skipped, votes)
    if role in ("train", "votes"):
        return out.subset(has_emotion(votes))
    clear = majority(votes)
    out = out.subset(clear >= 0)
    out.labels = clear[clear >= 0]
    return out


def to_face(img: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGR, BGRA; 8 or 16 bit) -> uint8 grayscale 48x48."""
    import cv2

    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code) if img.shape[2] in (3, 4) else img[..., 0]
    if img.shape != (INPUT_SIZE, INPUT_SIZE):
        interp = cv2.INTER_AREA if min(img.shape) > INPUT_SIZE else cv2.INTER_LINEAR
        img = cv2.resize(img, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)
    return img


def _read_face(path: str) -> np.ndarray | None:
    """The face in ``path``, or None if it cannot be read. Read by Python and decoded from memory, so any
    file name works (OpenCV's own reader takes UTF-8 names only), and a FIFO or device is never opened."""
    import cv2

    from .walk import special_kind

    if special_kind(path):
        return None
    try:
        data = np.fromfile(path, np.uint8)
    except (OSError, ValueError):
        return None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None or img.size == 0:
        return None
    return to_face(img)


def _class_folders(folder: Path, require_all: bool) -> list[tuple[int, Path]]:
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DatasetError(f"{folder}: no class folders (expected {', '.join(CLASSES)})")
    out = []
    for d in subdirs:
        try:
            out.append((class_index(d.name), d))
        except ValueError as e:
            raise DatasetError(f"{d}: unknown class folder ({e})") from None
    seen = {i for i, _ in out}
    if require_all and len(seen) < len(CLASSES):
        missing = [c for i, c in enumerate(CLASSES) if i not in seen]
        raise DatasetError(f"{folder}: no folder for class(es) {', '.join(missing)}")
    return out


def load_folder(folder: str | os.PathLike, require_all: bool = False, n_jobs: int = 2) -> LabelledSet:
    """Faces from ``folder/<class>/*.jpg``; unreadable files are skipped and listed, an empty class is an error."""
    from joblib import Parallel, delayed

    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    from .walk import iter_files, printable

    files: list[tuple[str, int]] = []
    unreadable: list[tuple[str, str]] = []
    for idx, d in _class_folders(folder, require_all):
        found, errors = iter_files(d)  # no recursion: any depth of sub-folders
        unreadable += [(printable(str(p)), why) for p, why in errors]
        members = sorted(str(p) for p in found if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not members:
            raise DatasetError(f"{d}: class folder '{d.name}' has no images")
        files += [(p, idx) for p in members]
    chunks = [files[i : i + 2000] for i in range(0, len(files), 2000)]
    decoded = Parallel(n_jobs=min(n_jobs, len(chunks)) or 1, prefer="threads")(
        delayed(lambda ch: [_read_face(p) for p, _ in ch])(ch) for ch in chunks
    )
    images, labels, sources, skipped = [], [], [], []
    for ch, faces in zip(chunks, decoded):
        for (p, idx), face in zip(ch, faces):
            if face is None:
                skipped.append((printable(p), "unreadable or not an image"))
            else:
                images.append(face)
                labels.append(idx)
                sources.append(printable(p))  # a name only (the face is decoded): escaped, tables stay valid
    if not images:
        raise DatasetError(f"{folder}: no readable images")
    return LabelledSet(np.stack(images), np.asarray(labels, np.int64), sources, str(folder), unreadable + skipped)


def load_csv(path: str | os.PathLike, usage: str | None) -> LabelledSet:
    """Rows of a Kaggle ``fer2013.csv`` (emotion,pixels,Usage) whose Usage is ``usage`` (all rows if None)."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"emotion": str, "pixels": str, "Usage": str}, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DatasetError(f"{path}: cannot read CSV ({e})") from None
    missing = {"emotion", "pixels"} - set(df.columns)
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(sorted(missing))} (expected emotion,pixels,Usage)")
    df["line"] = np.arange(len(df)) + 2  # 1-based, after the header
    if usage is not None:
        if "Usage" not in df.columns:
            raise DatasetError(f"{path}: no Usage column to select the {usage} split")
        df = df[df["Usage"].str.strip().str.lower() == usage.lower()]
        if df.empty:
            raise DatasetError(f"{path}: no rows with Usage={usage}")
    n = INPUT_SIZE * INPUT_SIZE
    images = np.empty((len(df), INPUT_SIZE, INPUT_SIZE), np.uint8)
    labels = np.empty(len(df), np.int64)
    remap = [CLASSES.index(c) for c in FER2013_CSV_ORDER]
    for k, (emotion, pixels, line) in enumerate(zip(df["emotion"], df["pixels"], df["line"])):
        text = str(emotion).strip()
        if not (text.isascii() and text.isdigit() and int(text) < len(remap)):  # '²'.isdigit() is True
            raise DatasetError(f"{path}:{line}: emotion {text!r} is not a label 0-6")
        try:
            values = np.array(str(pixels).split(), dtype=np.float64)
        except ValueError:
            bad = next(v for v in str(pixels).split() if not _is_number(v))
            raise DatasetError(f"{path}:{line}: pixel value {bad[:20]!r} is not a number") from None
        if values.size != n:
            raise DatasetError(f"{path}:{line}: {values.size} pixels, expected {n} (48x48)")
        if not np.isfinite(values).all():
            raise DatasetError(f"{path}:{line}: pixel value {values[~np.isfinite(values)][0]} is not a number 0-255")
        images[k] = np.clip(values, 0, 255).reshape(INPUT_SIZE, INPUT_SIZE).astype(np.uint8)
        labels[k] = remap[int(text)]
    sources = [f"{path}:{line}" for line in df["line"]]
    return LabelledSet(images, labels, sources, f"{path} ({usage or 'all rows'})")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _find_split_folder(root: Path, role: str) -> Path | None:
    for name in SPLIT_FOLDERS[role]:
        for p in (root / name, root / name.capitalize(), root / name.upper()):
            if p.is_dir():
                return p
    return None


def load_split(data: str | os.PathLike, role: str, require_all: bool = False, split: str | None = None,
               votes: str | os.PathLike | None = None) -> LabelledSet:
    """One labelled split of DATA: ``role`` is 'train' or 'validation' (``split`` overrides a CSV's Usage);
    with ``votes`` (a FER+ votes CSV) as ``with_votes`` makes it."""
    found = _load_split(data, role, require_all, split)
    return with_votes(found, votes, role) if votes else found


def _load_split(data: str | os.PathLike, role: str, require_all: bool, split: str | None) -> LabelledSet:
    data = Path(data)
    if not data.exists():
        raise DatasetError(f"{data}: no such file or folder")
    if data.is_file():
        if data.suffix.lower() != ".csv":
            raise DatasetError(f"{data}: expected a folder or a fer2013.csv file")
        return load_csv(data, split or CSV_USAGE[role])
    folder = _find_split_folder(data, role)
    if folder is None:
        if role == "validation" and _find_split_folder(data, "train") is None:
            folder = data  # DATA itself holds <class>/ folders
        else:
            names = "/, ".join(SPLIT_FOLDERS[role])
            raise DatasetError(f"{data}: no {names}/ folder")
    return load_folder(folder, require_all=require_all)
