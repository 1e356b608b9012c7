"""The photo engine: sources -> faces -> predictions -> explanations for each image file, in parallel.

Work items are file paths, not decoded arrays, so any joblib backend can run them (processes here, a Dask
cluster through joblib's dask backend), and each worker loads the model and the detector once, on its
first item. Workers return ``records.ImageResult`` records, in input order, and encode nothing: rows and
pictures are made by the sinks and reports (``rows``, ``report``). ``analysis.run`` strings this together
with the videos and people of a run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..core.records import STATUS_FAILED, STATUS_NO_FACES, STATUS_OK, STATUS_SKIPPED, Faces, ImageResult
from ..explain.lime import LimeSettings
from ..faces.detect import DEFAULT_DETECTOR

#: Side of the colour face crops kept for a report (pixels).
COLOUR_SIDE = 112

@dataclass
class RunSettings:
    """Everything a worker needs to process one path; small and picklable."""

    model_path: str | None = None
    detector: str = DEFAULT_DETECTOR
    detector_options: dict = field(default_factory=dict)
    explain: bool = True
    lime: LimeSettings = field(default_factory=LimeSettings)
    max_side: int = 2048  # images are decoded at most this long (memory)
    max_pixels: int = 60_000_000  # larger non-JPEG images are refused (sources.MAX_PIXELS)
    people: bool = True  # identity embeddings, for grouping faces into people
    thumb_side: int = 400  # report thumbnails
    threads_per_worker: int | None = None


# ---------------------------------------------------------------- per-worker state
_WORKER: dict = {}


def _configure_threads(n: int | None) -> None:
    if n is None or _WORKER.get("threads_set"):
        return
    from ..core.runtime import configure_threads, litert_available
    from ..emotions.model import RUNTIME_ENV

    configure_threads(n)  # LiteRT: threads per interpreter
    if litert_available() and os.environ.get(RUNTIME_ENV, "auto") != "keras":
        _WORKER["threads_set"] = True
        return  # TensorFlow is never imported: nothing else to set
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except (ImportError, RuntimeError):
        pass  # TensorFlow already initialised here, or absent: load_model says so in one line
    _WORKER["threads_set"] = True


def worker_model(model_path: str | None, threads: int | None = None):
    """The model of this process, loaded on first use and kept (never once per image)."""
    key = ("model", model_path)
    if key not in _WORKER:
        _configure_threads(threads)
        from ..emotions.model import load_model

        _WORKER[key] = load_model(model_path)
    return _WORKER[key]


def worker_detector(name: str, options: dict):
    """The detector of this process, made once per (detector actually used, options): 'auto' is resolved
    first, so the key names the detector that runs."""
    from ..faces.detect import make_detector, resolve_detector

    key = ("detector", resolve_detector(name), tuple(sorted(options.items())))
    if key not in _WORKER:
        _WORKER[key] = make_detector(name, **options)
    return _WORKER[key]


# ---------------------------------------------------------------- the faces of one picture
def find_faces(rgb: np.ndarray, scale: float, detector, source: str, frame: int | None = None,
               time: float | None = None, embed: bool = False) -> Faces:
    """Detect, align and crop the faces of one decoded picture: a ``Faces`` record, boxes in original pixels.

    ``scale`` is decoded size / original size (``read_image`` and ``VideoStream`` give it). Crops are
    aligned by the 5 landmarks (eyes level, FER2013's framing) where the detector gives them; ``colour``
    holds each box in colour at COLOUR_SIDE (what a report shows). ``embed`` adds each face's identity
    embedding (``people.embed``).
    """
    from ..faces.align import align_face
    from ..faces.detect import to_gray
    from ..sources.images import square

    found = detector.detect(rgb)
    if not found:
        return Faces.empty(source, frame, time)
    gray = to_gray(rgb)
    crops = np.stack([align_face(gray, d) for d in found])
    here = np.array([(d.box.x, d.box.y, d.box.w, d.box.h) for d in found], np.int64)
    marks = np.stack([d.landmarks for d in found]) if all(d.landmarks is not None for d in found) else None
    original = [d.scaled(1 / scale).box for d in found]
    faces = Faces(source, np.array([(b.x, b.y, b.w, b.h) for b in original], np.int64),
                  np.array([d.score for d in found], np.float32), crops, frame, time,
                  landmarks=None if marks is None else (marks / scale).astype(np.float32))
    faces.colour = np.stack([square(rgb[max(y, 0): y + h, max(x, 0): x + w], COLOUR_SIDE) for x, y, w, h in here])
    if embed:
        from ..faces.embed import embed as embed_faces

        faces.embeddings, faces.embed_reasons = embed_faces(rgb, here, marks, scale)
    return faces


# ---------------------------------------------------------------- one work item
def _failure(e: Exception) -> str:
    text = str(e).strip().splitlines()[-1][:200] if str(e).strip() else ""
    return f"analysis failed ({type(e).__name__}: {text})"


def process_image(path: str, settings: RunSettings, root: str | None = None, data: bytes | None = None) -> ImageResult:
    """Everything batchemo does to one image file: an ``ImageResult`` (status ok, no_faces or failed, with
    a reason). ``data``: the file's bytes when they come from elsewhere (a cluster's client). Never raises
    for a bad file; model errors do raise (no image could use the model)."""
    from ..explain.classify import classify_faces
    from ..sources.images import fit, read_image
    from ..sources.walk import SourceError

    rec = ImageResult(path, STATUS_FAILED, root=root)
    detector = worker_detector(settings.detector, settings.detector_options)
    try:
        rgb, scale = read_image(path, settings.max_side, settings.max_pixels, data)
    except SourceError as e:
        return replace(rec, reason=e.reason)
    except MemoryError:
        return replace(rec, reason="out of memory while decoding")
    h, w = rgb.shape[:2]
    rec.width, rec.height = round(w / scale), round(h / scale)
    model = worker_model(settings.model_path, settings.threads_per_worker)
    try:
        faces = find_faces(rgb, scale, detector, path, embed=settings.people)
        thumb, f = fit(rgb, settings.thumb_side)
        if len(faces):
            lime = settings.lime if settings.explain else None
            classify_faces(model, [faces], lime, n_jobs=1 if settings.threads_per_worker == 1 else 2)
    except MemoryError:
        return replace(rec, reason="out of memory while analysing")
    except Exception as e:  # an odd image that trips OpenCV or dlib must not stop a batch of thousands
        return replace(rec, reason=_failure(e))
    if not len(faces):
        return replace(rec, status=STATUS_NO_FACES, reason="no face found", thumbnail=thumb, thumb_scale=scale * f)
    return replace(rec, status=STATUS_OK, faces=faces, thumbnail=thumb, thumb_scale=scale * f)


# ---------------------------------------------------------------- many work items
def iter_results(items: Sequence[tuple[str, str | None]], settings: RunSettings,
                 jobs: int = 1) -> Iterator[ImageResult]:
    """An ImageResult for each (path, root) item, in order: on ``jobs`` local worker processes (joblib's
    loky), or here."""
    if jobs == 1:
        for path, root in items:
            yield process_image(path, settings, root)
        return
    from joblib import Parallel, delayed

    settings = replace(settings, threads_per_worker=max(1, (os.cpu_count() or 1) // jobs))
    with Parallel(n_jobs=jobs, backend="loky", return_as="generator", batch_size=1) as parallel:
        yield from parallel(delayed(process_image)(p, settings, r) for p, r in items)


def _root(found) -> str | None:
    return str(found.root) if found.root is not None else None


def auto_jobs(items: int, cores: int | None = None) -> int:
    """Worker processes that pay for ``items`` photos: one per core, and none extra for a handful of photos,
    where a worker's start-up (~1 s and ~300 MB) costs more than it saves; at most 8.

    One process leaves cores idle while it decodes, detects and embeds (one thread each): on 2 cores, 99
    real photos with explanations and people took 24.9 s on 2 processes against 32.6 s on one, and 36
    photos 10.1 s against 12.5 s (``batchemo run --jobs 1|2``, alternating, an idle machine)."""
    cores = cores or os.cpu_count() or 1
    return max(1, min(cores, items // 16, 8))


def image_records(found: Sequence, settings: RunSettings, store=None, jobs: int | None = 1,
                  compute=None) -> Iterator[ImageResult]:
    """One ImageResult per file ``sources.walk`` found (videos excluded), in order: skipped and unreadable
    files as they were found, images from ``store`` (a ``cache.ResultCache``) or computed on ``jobs`` workers
    (None: ``auto_jobs``), or by ``compute`` (items -> records in order: ``cluster.cluster_records``).

    A stored result is named as this run found its file (path, root); fresh ones are stored, failures not
    (a failure may pass: it is retried next time). Memory stays flat: entries are loaded one by one.
    """
    items = [(str(f.path), _root(f)) for f in found if f.kind == "image"]
    listed = [store.has(p) if store else False for p, _ in items]
    todo = [item for item, done in zip(items, listed) if not done]
    jobs = auto_jobs(len(todo)) if jobs is None else jobs  # None (the CLI's default): what pays here
    stored = iter(listed)
    fresh = (compute(todo) if compute else iter_results(todo, settings, jobs)) if todo else iter([])
    for f in found:
        path, root = str(f.path), _root(f)
        if f.kind != "image":
            yield ImageResult(path, STATUS_SKIPPED if f.kind == "skipped" else STATUS_FAILED, f.reason, root)
            continue
        was_listed = next(stored)
        rec = store.get(path) if was_listed else None
        if rec is not None:
            rec = _with_thumbnail(replace(rec, path=path, root=root), settings)
        else:
            if was_listed:  # damaged, changed or gone since it was listed (not in ``todo``): compute it here
                rec = process_image(path, settings, root)
            else:  # results come back in input order, so the next fresh one is this item's
                rec = next(fresh)
            if store is not None and rec.status != STATUS_FAILED:
                store.put(path, replace(rec, thumbnail=None))  # ~40 KB a photo, not ~0.5 MB: see below
        yield rec


def _with_thumbnail(rec: ImageResult, settings: RunSettings) -> ImageResult:
    """A cached record's thumbnail, decoded again from its (unchanged) file: the cache keeps records without
    it, since a 400 px RGB array is ten times the rest of a photo's record. Decoding is all it costs (JPEGs
    are decoded reduced); a file that no longer decodes just has no thumbnail."""
    if rec.thumbnail is not None or rec.status not in (STATUS_OK, STATUS_NO_FACES):
        return rec
    from ..sources.images import fit, read_image
    from ..sources.walk import SourceError

    try:
        rgb, scale = read_image(rec.path, settings.thumb_side * 2, settings.max_pixels)
    except (SourceError, MemoryError):
        return rec
    thumb, f = fit(rgb, settings.thumb_side)
    return replace(rec, thumbnail=thumb, thumb_scale=scale * f)


def load_known_faces(folder: str | os.PathLike, detector):
    """``people.KnownFaces`` from ``DIR/<name>/*.jpg``: the largest face of each photo, named by its folder.

    Photos without a face to recognise are listed in ``skipped``, not fatal.
    """
    from ..people.cluster import KnownFaces
    from ..sources.images import read_image
    from ..sources.walk import SourceError, is_image, iter_files

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (--known-faces wants one sub-folder per person)")
    people = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not people:
        raise ValueError(f"{folder}: no sub-folders: --known-faces wants one sub-folder of photos per person")
    known, vectors = KnownFaces(), []
    for person in people:
        for photo in sorted(p for p in iter_files(person)[0] if is_image(p)):  # iterative: any depth
            try:
                rgb, scale = read_image(photo)
            except SourceError as e:
                known.skipped.append((str(photo), e.reason))
                continue
            faces = find_faces(rgb, scale, detector, str(photo), embed=True)
            usable = [i for i in range(len(faces)) if np.isfinite(faces.embeddings[i]).all()]
            if not usable:
                known.skipped.append((str(photo), "no face to recognise"))
                continue
            biggest = max(usable, key=lambda i: faces.boxes[i, 2] * faces.boxes[i, 3])
            known.names.append(person.name)
            vectors.append(faces.embeddings[biggest])
    if vectors:
        known.embeddings = np.stack(vectors)
    return known


def dask_client(scheduler: str | None):
    """A Dask client for ``backend="dask"``: ``scheduler``'s cluster, or a local one of 2 processes."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError("--backend dask needs dask: pip install 'batchemo[dask]'") from None
    return Client(scheduler) if scheduler else Client(processes=True, n_workers=2, threads_per_worker=1)
