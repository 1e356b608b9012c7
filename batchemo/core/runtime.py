"""The analysis runtime: the emotion network's forward pass on LiteRT, without TensorFlow.

Why: importing TensorFlow costs ~5 s and ~0.7 GB of memory per process, and the network is small. LiteRT
(``ai-edge-litert``, the standalone TensorFlow Lite runtime) imports in ~0.2 s and runs the same network
from a TFLite flatbuffer (float32 for labels; dynamic-range int8 for LIME where it gives the shown label,
``explain.explained_classifier``). ``batchemo export`` (``batchemo.export``) writes the flatbuffers beside
a ``.keras`` file; the shipped model ships them.

A model's flatbuffers are found, in order: beside the ``.keras`` file (``<stem>.float32.tflite``,
``<stem>.int8.tflite``) when its card's ``export`` record names this ``.keras`` file's SHA-256; in the user
cache (``cache_dir()``) under that digest. Where neither exists, ``load_model`` converts once (this needs
TensorFlow) and caches. Where LiteRT has no wheel, ``load_model`` runs the Keras model on TensorFlow.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

KINDS = ("float32", "int8")
_QUIET_LOCK = threading.RLock()
_SAID: set[str] = set()


def say(msg: str, key: str | None = None) -> None:
    """One ``batchemo:`` line on stderr, once per process and (through the environment) per run's workers."""
    key = key or msg
    env = "BATCHEMO_SAID_" + hashlib.sha1(key.encode()).hexdigest()[:10]
    if key in _SAID or os.environ.get(env):
        return
    _SAID.add(key)
    os.environ[env] = "1"  # worker processes inherit it: the line is said once per run, not once per worker
    print(f"batchemo: {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence stderr at the file-descriptor level: C++ log lines (absl, oneDNN, "Created TensorFlow Lite
    XNNPACK delegate") bypass Python's ``sys.stderr``. Python exceptions still propagate normally."""
    with _QUIET_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no fd 2 (some embedded interpreters): nothing to silence
            yield
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@lru_cache(maxsize=None)
def _litert_interpreter():
    """LiteRT's Interpreter class, or None where ``ai-edge-litert`` is not installed (no wheel there)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    return Interpreter


def litert_available() -> bool:
    return _litert_interpreter() is not None


def interpreter_class():
    """LiteRT's Interpreter; TensorFlow's own ``tf.lite.Interpreter`` where LiteRT is missing (Keras fallback)."""
    cls = _litert_interpreter()
    if cls is not None:
        return cls
    import warnings

    with quiet():
        import tensorflow as tf
    with warnings.catch_warnings():  # "deprecated, use ai_edge_litert"
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter


def require_tensorflow(what: str) -> None:
    """A one-line error naming the extra, before any work, where TensorFlow is not installed (training and
    export need it; analysis does not)."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        from .records import ModelError

        raise ModelError(f"{what} needs TensorFlow, which is not installed: pip install 'batchemo[train]'")


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for threads made from now on (Linux; a no-op elsewhere).

    Why: LIME explains faces on short-lived worker threads, and glibc gives threads their own arenas (up to
    8 per core), each keeping its freed pages: over 36 photos a process grew from 230 to 370 MB peak RSS;
    with 2 arenas it stays at 290 MB, at the same speed. (``MALLOC_ARENA_MAX=2`` in the environment does
    the same from process start.)
    """
    if not sys.platform.startswith("linux") or _ARENAS.get("set"):
        return
    _ARENAS["set"] = True
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, int(arenas))  # M_ARENA_MAX
    except (OSError, AttributeError):  # musl or another libc: nothing to cap
        pass


_ARENAS: dict = {}

#: Threads one interpreter's pass may use (``configure_threads``; ``engine`` sets 1 per ``--jobs`` worker).
_THREADS = {"n": min(2, os.cpu_count() or 1)}


def configure_threads(n: int | None) -> None:
    """Threads per interpreter for forward passes built after this call (None: leave as is)."""
    if n is not None:
        _THREADS["n"] = max(1, int(n))


_ANNOUNCED: list[bool] = []  # an interpreter was allocated in this process (XNNPACK has spoken)


class TFLiteForward:
    """Callable: float32 (N, 48, 48, 1) in [0, 1] -> (N, C) network outputs, in the network's own class order.

    Interpreters are not thread-safe, so each call borrows one from a pool (and makes one when all are
    busy): two threads explaining two faces run on two cores (``invoke`` releases the GIL), and threads
    that come and go (joblib makes new ones per call) reuse the interpreters already built.
    """

    def __init__(self, flatbuffer: bytes, threads: int | None = None, kind: str = "float32"):
        self.flatbuffer, self.kind = flatbuffer, kind
        limit_malloc_arenas()
        self.threads = threads or _THREADS["n"]
        self._pool: queue.SimpleQueue = queue.SimpleQueue()
        self.built = 0  # interpreters made so far (tests: the pool is reused)
        slot = self._new()  # fail here, on load, not in the middle of a batch
        self.input_shape = tuple(slot[0].get_input_details()[0]["shape"][1:])
        self.outputs = int(slot[0].get_output_details()[0]["shape"][-1])
        self._pool.put(slot)

    def _new(self) -> list:
        cls = interpreter_class()
        # XNNPACK announces its delegate on stderr, from C++, on a process's first allocation only: silence
        # that one (at load), never one made mid-run, when fd 2 is also the progress bar's and the log's
        with quiet() if not _ANNOUNCED else contextlib.nullcontext():
            it = cls(model_content=self.flatbuffer, num_threads=self.threads)
            it.allocate_tensors()
        _ANNOUNCED.append(True)
        self.built += 1
        return [it, -1]  # the interpreter and the batch size it is allocated for

    def __call__(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        # Batches of 32: XNNPACK is as fast per face as with 64 or 1024 (measured: 600 int8 passes 0.65 s at 32,
        # 0.74 s at 64), and an interpreter's activations take 17 MB rather than 29 MB.
        try:
            slot = self._pool.get_nowait()
        except queue.Empty:
            slot = self._new()
        try:
            it = slot[0]
            inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
            res = np.empty((len(x), self.outputs), np.float32)
            for i in range(0, len(x), batch_size):
                chunk = np.ascontiguousarray(x[i: i + batch_size], dtype=np.float32)
                if slot[1] != len(chunk):
                    it.resize_tensor_input(inp, chunk.shape)
                    it.allocate_tensors()
                    slot[1] = len(chunk)
                it.set_tensor(inp, chunk)
                it.invoke()
                res[i: i + len(chunk)] = it.get_tensor(out)
        finally:
            self._pool.put(slot)
        return res


class Reordered:
    """A forward pass whose columns are permuted into CLASSES order (``order[k]``: the network's column of
    CLASSES[k]); ``kind`` and ``inner`` tell tests and reports which pass it is."""

    def __init__(self, inner: Callable[[np.ndarray], np.ndarray], order: list[int]):
        self.inner, self.order = inner, list(order)
        self.kind = getattr(inner, "kind", "float32")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.inner(x)
        return out if self.order == list(range(out.shape[1])) else out[:, self.order]


# ---------------------------------------------------------------- where a model's flatbuffers live
def digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file (hex): what a flatbuffer was converted from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def beside(model_path: str | os.PathLike) -> dict[str, Path]:
    """``{kind: <stem>.<kind>.tflite}`` next to a ``.keras`` file."""
    p = Path(model_path)
    return {k: p.with_name(f"{p.stem}.{k}.tflite") for k in KINDS}


def cache_root() -> Path:
    """batchemo's user cache: $BATCHEMO_CACHE, else $XDG_CACHE_HOME/batchemo, else ~/.cache/batchemo
    (Windows: %LOCALAPPDATA%\\batchemo)."""
    if os.environ.get("BATCHEMO_CACHE"):
        return Path(os.environ["BATCHEMO_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") or Path.home() / ".cache"
    return Path(base) / "batchemo"


def cache_dir() -> Path:
    """The user cache for converted flatbuffers: ``cache_root()/tflite``."""
    return cache_root() / "tflite"


def write_flatbuffers(paths: dict[str, Path], flatbuffers: dict[str, bytes]) -> dict[str, Path]:
    """Each kind's flatbuffer to its path, atomically (``outputs.atomic_write_bytes``); returns ``paths``."""
    from .files import atomic_write_bytes

    for kind, data in flatbuffers.items():
        atomic_write_bytes(paths[kind], data)
    return paths


def cached(sha: str) -> dict[str, Path]:
    """``{kind: path}`` of a model's flatbuffers in the user cache, by the ``.keras`` file's digest."""
    return {k: cache_dir() / f"{sha[:32]}.{k}.tflite" for k in KINDS}


def find_flatbuffers(model_path: str | os.PathLike, export: dict | None,
                     sha: str | None = None) -> tuple[dict[str, Path], str] | None:
    """The flatbuffers converted from this very ``.keras`` file, and where they were found ("beside" or
    "cache"); None when there are none. ``export`` is the card's export record (its ``keras_sha256``);
    ``sha``: the file's digest, when the caller has it."""
    sha = sha or digest(model_path)
    near = beside(model_path)
    if export and export.get("keras_sha256") == sha and near["float32"].exists():
        return {k: p for k, p in near.items() if p.exists()}, "beside"
    far = cached(sha)
    if far["float32"].exists():
        return {k: p for k, p in far.items() if p.exists()}, "cache"
    return None


__all__ = ["TFLiteForward", "Reordered", "litert_available", "quiet", "find_flatbuffers", "configure_threads"]
