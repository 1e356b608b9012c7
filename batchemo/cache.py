"""A results cache that makes long runs resumable: rows of each image are stored as they are computed.

A key covers everything the rows depend on: the file (path, size, modification time), the folder it was
found under, the model file and every setting. So a changed photo, model or setting is recomputed, and a
run stopped half-way picks up where it stopped. One small pickle per image, written atomically.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import asdict
from pathlib import Path

from .outputs import atomic_write_bytes


def _file_identity(path: str | os.PathLike) -> str:
    st = os.stat(path)
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"


class ResultCache:
    """Rows per (image, root) under ``folder``; ``settings`` is the engine's RunSettings."""

    VERSION = 1

    def __init__(self, folder: str | os.PathLike, settings):
        from .model import DEFAULT_MODEL_PATH

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        model = settings.model_path or str(DEFAULT_MODEL_PATH)
        described = {"v": self.VERSION, "model": _file_identity(model), "settings": asdict(settings)}
        described["settings"].pop("threads_per_worker", None)  # how, not what
        self._settings_key = json.dumps(described, sort_keys=True, default=str)

    def _file(self, path: str, root: str | None) -> Path | None:
        try:
            ident = _file_identity(path)
        except OSError:
            return None  # unreadable: never cached, always reported afresh
        digest = hashlib.sha1(f"{ident}|{root}|{self._settings_key}".encode()).hexdigest()
        return self.folder / digest[:2] / f"{digest}.pkl"

    def get(self, path: str, root: str | None) -> list[dict] | None:
        f = self._file(path, root)
        if f is None or not f.exists():
            return None
        try:
            with open(f, "rb") as fh:
                return pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            return None  # a damaged entry is recomputed

    def put(self, path: str, root: str | None, rows: list[dict]) -> None:
        f = self._file(path, root)
        if f is not None:
            atomic_write_bytes(f, pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
