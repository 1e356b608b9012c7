"""A results cache that makes long runs resumable: each image's record is stored as it is computed.

A key covers everything the rows depend on: the file (its real path, with links and ``..`` resolved, its
size and modification time), the model file and its card, every setting, and the detector's identity
(``faces.fingerprint``: its defaults, constants and network file, so a release that changes them does not
reuse old faces). So ``photos/`` and ``/abs/photos/`` share
their results, a changed photo, model or setting is recomputed, and a run stopped half-way picks up where
it stopped. One pickled ``records.ImageResult`` per image (faces, crops, explanations as arrays: no encoded
image; rows and pictures are made from it when written; the engine stores it without its thumbnail), written
atomically; temp files a killed run left are removed.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import asdict
from pathlib import Path

from ..core.files import atomic_write_bytes, remove_stale_temp_files


def _file_identity(path: str | os.PathLike) -> str:
    st = os.stat(path)
    return f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}"


class ResultCache:
    """An ImageResult per image under ``folder``; ``settings`` is the engine's RunSettings."""

    VERSION = 4  # 3: records (ImageResult), not rows with JPEGs; 4: keyed by the detector's identity

    def __init__(self, folder: str | os.PathLike, settings):
        from ..emotions.model import DEFAULT_MODEL_PATH, ModelCard
        from ..faces.fingerprint import detector_identity

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # embeddings identify people: private
        model = settings.model_path or str(DEFAULT_MODEL_PATH)
        card = ModelCard.path_for(model)  # the card says how a face is read (its TTA): part of the model
        described = {"v": self.VERSION, "model": _file_identity(model),
                     "card": _file_identity(card) if card.exists() else "", "settings": asdict(settings),
                     "detector": detector_identity(settings.detector, settings.detector_options)}
        described["settings"].pop("threads_per_worker", None)  # how, not what
        self._settings_key = json.dumps(described, sort_keys=True, default=str)
        for sub in self.folder.iterdir():
            if sub.is_dir():
                remove_stale_temp_files(sub)

    def _file(self, path: str) -> Path | None:
        try:
            ident = _file_identity(path)
        except OSError:
            return None  # unreadable: never cached, always reported afresh
        # surrogateescape: a file name that is not UTF-8 keys its own entry like any other
        digest = hashlib.sha1(f"{ident}|{self._settings_key}".encode("utf-8", "surrogateescape")).hexdigest()
        return self.folder / digest[:2] / f"{digest}.pkl"

    def has(self, path: str) -> bool:
        f = self._file(path)
        return f is not None and f.exists()

    def get(self, path: str):
        """The stored ImageResult of ``path`` (its ``path``/``root`` as the run that stored it named them)."""
        f = self._file(path)
        if f is None or not f.exists():
            return None
        try:
            with open(f, "rb") as fh:
                return pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            return None  # a damaged entry is recomputed

    def put(self, path: str, record) -> None:
        f = self._file(path)
        if f is None:
            return
        try:
            atomic_write_bytes(f, pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:  # a full disk or a concurrent run's clean-up: the cache is a help, never a failure
            pass
