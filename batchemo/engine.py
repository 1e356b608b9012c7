"""The batch engine: strings sources -> faces -> predictions -> explanations together, in parallel.

Work items are file paths, not decoded arrays, so any joblib backend can run them (processes here, a Dask
cluster through joblib's dask backend), and each worker loads the model and the detector once, on its
first item. Results stream back in input order; only small encoded images are kept, so memory stays flat
as the collection grows.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .detect import DEFAULT_DETECTOR
from .explain import LIME_SAMPLES, LimeSettings
from .outputs import annotate, encode, explanation_images, fit, square
from .gallery import GALLERY_SIZE, Gallery, RunStats
from .records import PROB_COLUMNS, STATUS_FAILED, STATUS_NO_FACES, STATUS_OK, STATUS_SKIPPED, Faces

#: The columns of the CSV / JSON output, in order: one row per face, and one per input without one (an
#: image without a face, a file that failed or was skipped, a video pointing to its timeline).
TABLE_COLUMNS = [
    "path", "folder", "status", "reason", "face_index", "x", "y", "w", "h", "score", "label", "confidence",
    *PROB_COLUMNS, "lime_label", "lime_score", "lime_faithfulness", "lime_deletion_auc", "lime_insertion_auc",
    "person", "image_width", "image_height",
]
#: With ``embeddings=True`` (``--embeddings``) the table also holds each face's identity embedding.
EMBEDDING_COLUMNS = [f"emb_{i}" for i in range(128)]
#: Encoded images carried for the report, not written to CSV / JSON.
IMAGE_COLUMNS = ["thumbnail", "face_jpg", "crop_jpg", "heatmap_img", "lime_img"]
#: Per-face values that travel with a row but are not table cells (identity stays out of files by default).
PRIVATE_COLUMNS = IMAGE_COLUMNS + ["embedding"]


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
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already initialised in this process
    _WORKER["threads_set"] = True


def worker_model(model_path: str | None, threads: int | None = None):
    """The model of this process, loaded on first use and kept (never once per image)."""
    key = ("model", model_path)
    if key not in _WORKER:
        _configure_threads(threads)
        from .model import load_model

        _WORKER[key] = load_model(model_path)
    return _WORKER[key]


def worker_detector(name: str, options: dict):
    key = ("detector", name, tuple(sorted(options.items())))
    if key not in _WORKER:
        from .detect import make_detector

        _WORKER[key] = make_detector(name, **options)
    return _WORKER[key]


# ---------------------------------------------------------------- the faces of one picture
def find_faces(rgb: np.ndarray, scale: float, detector, source: str, frame: int | None = None,
               time: float | None = None, embed: bool = False) -> Faces:
    """Detect, align and crop the faces of one decoded picture: a ``Faces`` record, boxes in original pixels.

    ``scale`` is decoded size / original size (``read_image`` and ``VideoStream`` give it). Crops are
    aligned by the 5 landmarks (eyes level, FER2013's framing) where the detector gives them. ``embed``
    adds each face's identity embedding (``people.embed``).
    """
    from .detect import align_face, to_gray

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
    if embed:
        from .people import embed as embed_faces

        faces.embeddings, faces.embed_reasons = embed_faces(rgb, here, marks, scale)
    return faces


def face_rows(faces: Faces, base: dict, colour: np.ndarray | None = None, scale: float = 1.0) -> list[dict]:
    """Table rows for the classified faces of one image: box, label, probabilities, encoded images.

    ``colour`` is the decoded picture (``scale`` = its size / original size), for the colour face crops
    the report shows; without it the gray CNN crop is shown.
    """
    rows = []
    labels, confs = faces.labels, faces.confidences
    for i in range(len(faces)):
        b = faces.box(i)
        row = dict(base, status=STATUS_OK, reason="", face_index=i, x=b.x, y=b.y, w=b.w, h=b.h,
                   score=float(faces.scores[i]), label=labels[i], confidence=float(confs[i]))
        row.update({c: float(p) for c, p in zip(PROB_COLUMNS, faces.probabilities[i])})
        if colour is not None:
            d = b.scaled(scale)
            crop_img = colour[max(d.y, 0): d.y + d.h, max(d.x, 0): d.x + d.w]
        else:
            crop_img = faces.crops[i]
        row["face_jpg"] = encode(square(crop_img, 112), ".jpg", 90)
        row["crop_jpg"] = encode(square(faces.crops[i], 112), ".jpg", 90)  # aligned: what the CNN and LIME read
        if faces.embeddings is not None:
            row["embedding"] = faces.embeddings[i]
            if faces.embed_reasons[i]:
                row["reason"] = f"no person: {faces.embed_reasons[i]}"
        exp = faces.shown_explanation(i)
        if exp is not None:
            row["lime_label"], row["lime_score"] = exp.label, exp.score
            row["lime_faithfulness"] = exp.faithfulness
            row["lime_deletion_auc"], row["lime_insertion_auc"] = exp.deletion_auc, exp.insertion_auc
            row["heatmap_img"], row["lime_img"] = explanation_images(faces.crops[i], exp)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- one work item
def process_image(path: str, settings: RunSettings, root: str | None = None) -> list[dict]:
    """Everything batchemo does to one image file; never raises for a bad file (status + reason instead)."""
    from .classify import classify_faces
    from .sources import SourceError, read_image

    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    folder = os.path.dirname(rel) or "."
    base = {"path": path, "folder": folder}
    try:
        rgb, scale = read_image(path, settings.max_side, settings.max_pixels)
    except SourceError as e:
        return [dict(base, status=STATUS_FAILED, reason=e.reason)]
    except MemoryError:
        return [dict(base, status=STATUS_FAILED, reason="out of memory while decoding")]
    h, w = rgb.shape[:2]
    base.update(image_width=round(w / scale), image_height=round(h / scale))
    model = worker_model(settings.model_path, settings.threads_per_worker)  # model errors do stop the run
    detector = worker_detector(settings.detector, settings.detector_options)
    try:
        faces = find_faces(rgb, scale, detector, path, embed=settings.people)
        thumb, f = fit(rgb, settings.thumb_side)
        if not len(faces):
            return [dict(base, status=STATUS_NO_FACES, reason="no face found", thumbnail=encode(thumb))]
        lime = settings.lime if settings.explain else None
        classify_faces(model, [faces], lime, n_jobs=1 if settings.threads_per_worker == 1 else 2)
        rows = face_rows(faces, base, rgb, scale)
    except MemoryError:
        return [dict(base, status=STATUS_FAILED, reason="out of memory while analysing")]
    except Exception as e:  # an odd image that trips OpenCV or dlib must not stop a batch of thousands
        text = str(e).strip().splitlines()[-1][:200] if str(e).strip() else ""
        return [dict(base, status=STATUS_FAILED, reason=f"analysis failed ({type(e).__name__}: {text})")]
    marks = [(faces.box(i), r["label"], r["confidence"], i) for i, r in enumerate(rows)]
    thumb_jpg = encode(annotate(thumb, marks, scale * f))
    for r in rows:
        r["thumbnail"] = thumb_jpg  # the same bytes object for every face of the image
    return rows


# ---------------------------------------------------------------- the run
def iter_results(
    items: Sequence[tuple[str, str | None]],
    settings: RunSettings,
    jobs: int = 1,
    backend: str = "loky",
) -> Iterator[list[dict]]:
    """Rows for each (path, root) item, in order, computed on ``jobs`` workers."""
    if jobs == 1 and backend == "loky":
        for path, root in items:
            yield process_image(path, settings, root)
        return
    import contextlib

    from joblib import Parallel, delayed, parallel_config

    if backend == "dask":  # joblib registers its dask backend on first use through parallel_config
        ctx, n_jobs, backend_arg = parallel_config(backend="dask"), -1, None
    else:
        settings = replace(settings, threads_per_worker=max(1, (os.cpu_count() or 1) // jobs))
        ctx, n_jobs, backend_arg = contextlib.nullcontext(), jobs, backend
    with ctx, Parallel(n_jobs=n_jobs, backend=backend_arg, return_as="generator", batch_size=1) as parallel:
        yield from parallel(delayed(process_image)(p, settings, r) for p, r in items)


def collect(paths: Iterable[str | os.PathLike]) -> list:
    """Every file under ``paths`` except videos (``sources.walk``), in a stable order; a missing path raises."""
    from .sources import walk

    return [f for f in walk(paths) if f.kind != "video"]


def _base(found) -> dict:
    path = str(found.path)
    rel = os.path.relpath(path, found.root) if found.root is not None else os.path.basename(path)
    return {"path": path, "folder": os.path.dirname(rel) or "."}


@dataclass
class RunResult:
    """A run of ``batchemo run``: statistics, the gallery of image cards, and the table when kept.

    ``table``: one row per face (and per input without one), TABLE_COLUMNS, or None when the run streamed
    its rows to files only. ``stats``: counts over every input. ``gallery``: the kept inputs' rows, with
    their encoded images (IMAGE_COLUMNS). ``info``: settings, model card, timing.
    """

    table: object
    stats: RunStats
    gallery: Gallery
    info: dict
    faces: list = field(default_factory=list)  # people.FaceRef per face with a label, for naming people
    settings: RunSettings | None = None  # how its images were processed (to render a few again)


def run(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    model: str | os.PathLike | None = None,
    detector: str = DEFAULT_DETECTOR,
    explain: bool = True,
    lime_samples: int = LIME_SAMPLES,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    progress: bool = True,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    sinks: Sequence = (),
    gallery: int = GALLERY_SIZE,
    keep_table: bool = True,
    max_pixels: int | None = None,
    people: bool = True,
    embeddings: bool = False,
    detector_options: dict | None = None,
) -> RunResult:
    """Faces, emotions and (optionally) LIME explanations for every file under ``paths``, streamed.

    Each input's rows go, as soon as they are computed and in input order, to every sink (``write(rows)``,
    e.g. ``outputs.TableWriter``), to the running statistics and to the bounded gallery; only the table
    (images left out) is kept, and only with ``keep_table``. So memory stays flat however large the
    collection. With ``cache`` (a folder), each image's rows are stored as they are computed and reused by
    later runs with the same files, model and settings: a stopped run resumes where it stopped.

    ``people``: an identity embedding per face, kept compactly in ``RunResult.faces`` so that
    ``people.assign`` can name people over the whole run (their ``person`` cells are filled then: the
    table's here, a TableWriter's when it is closed). ``embeddings`` also writes them to the sinks
    (EMBEDDING_COLUMNS): they identify people, so only when asked.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .detect import make_detector
    from .sources import MAX_PIXELS

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    detector_options = dict(detector_options or {})
    found = collect(paths)  # a missing path fails here, before the model's 10 s load
    # fail fast (missing dlib, bad option) before any work; 'auto' becomes the detector actually used
    detector = make_detector(detector, **detector_options).name
    settings = RunSettings(
        model_path=str(model) if model else None, detector=detector, detector_options=detector_options,
        explain=explain, lime=LimeSettings(num_samples=lime_samples, seed=seed),
        max_pixels=max_pixels or MAX_PIXELS, people=people,
    )
    card = worker_model(settings.model_path).card  # loaded once here, reused by in-process work
    items = [(str(f.path), str(f.root) if f.root is not None else None) for f in found if f.kind == "image"]
    t0 = time.time()
    stats, shown, kept, refs = RunStats(), Gallery(gallery, total=len(items), seed=seed), [], []
    row_no = 0
    client = _dask_client(scheduler) if backend == "dask" else None
    store = None
    if cache is not None:
        from .cache import ResultCache

        store = ResultCache(cache, settings)
    stored = [store.has(p) if store else False for p, _ in items]  # loaded one by one below: memory stays flat
    todo = [item for item, done in zip(items, stored) if not done]
    fresh = iter_results(todo, settings, jobs, backend) if todo else iter([])
    cached = iter(stored)

    def results():
        for f in found:
            if f.kind != "image":
                yield [dict(_base(f), status=STATUS_SKIPPED if f.kind == "skipped" else STATUS_FAILED,
                            reason=f.reason)]
                continue
            result = store.get(str(f.path)) if next(cached) else None
            if result is not None:  # stored under the file's real path: name it as this run found it
                result = [dict(r, **_base(f)) for r in result]
            else:
                if store is not None and store.has(str(f.path)):  # damaged since: compute it here
                    result = process_image(str(f.path), settings, str(f.root) if f.root is not None else None)
                else:  # results come back in input order, so the next fresh one is this item's
                    result = next(fresh)
                if store is not None and result[0]["status"] != STATUS_FAILED:  # a failure may pass: retry it
                    store.put(str(f.path), result)
            yield result

    try:
        with tqdm(total=len(found), unit="file", desc="batchemo", disable=not progress, file=sys.stderr) as bar:
            for seq, rows in enumerate(results()):
                rows = list(rows)
                plain = [{k: v for k, v in r.items() if k not in PRIVATE_COLUMNS} for r in rows]
                for r, p in zip(rows, plain):
                    if people and r["status"] == STATUS_OK:
                        refs.append(_face_ref(r, row_no))
                        if embeddings and r.get("embedding") is not None:
                            p.update(zip(EMBEDDING_COLUMNS, map(float, r["embedding"])))
                    row_no += 1
                for sink in sinks:
                    sink.write(plain)
                stats.add(plain)
                shown.offer(seq, rows)
                if keep_table:
                    kept += plain
                bar.update(1)
    finally:
        if client is not None:
            client.close()
    table = None
    if keep_table:
        table = pd.DataFrame(kept, columns=TABLE_COLUMNS + (EMBEDDING_COLUMNS if embeddings and people else []))
        for col in ("face_index", "x", "y", "w", "h", "image_width", "image_height"):
            table[col] = table[col].astype("Int64")
        table["reason"] = table["reason"].fillna("")
        table["person"] = table["person"].astype(object).where(table["person"].notna(), "")
    info = dict(
        seconds=time.time() - t0, images=len(items), files=len(found), model=dict(card.__dict__),
        detector=detector, detector_options=detector_options, explain=explain, lime_samples=lime_samples,
        jobs=jobs, backend=backend, inputs=[str(p) for p in paths], cached=len(items) - len(todo),
        gallery=gallery,
    )
    if table is not None:
        table.attrs.update(info)
    return RunResult(table, stats, shown, info, refs, settings)


def _face_ref(row: dict, row_no: int):
    from .people import EMBED_DIM, FaceRef

    emb = row.get("embedding")
    return FaceRef(source=row["path"], label=row["label"], confidence=float(row["confidence"]),
                   probabilities=np.array([row[c] for c in PROB_COLUMNS], np.float32),
                   embedding=np.asarray(emb, np.float32) if emb is not None else np.full(EMBED_DIM, np.nan, np.float32),
                   row=row_no, face_index=int(row["face_index"]))


def face_images(result: RunResult, refs) -> dict[tuple[str, int], dict]:
    """The report images (face crop, heatmap) of a few faces of a run, by (source, face index).

    Taken from the run's gallery where it kept them; otherwise the photo is processed again with the run's
    settings (the same faces come out, in the same order): a bounded gallery cannot know in advance which
    faces will represent each person.
    """
    wanted = {(r.source, r.face_index) for r in refs if r.face_index is not None}
    found: dict[tuple[str, int], dict] = {}
    kept = {rows[0]["path"]: rows for rows in result.gallery.cards()}
    for source in sorted({s for s, _ in wanted}):
        rows = kept.get(source) or process_image(source, result.settings)
        for r in rows:
            key = (source, r.get("face_index"))
            if key in wanted:
                found[key] = {k: r.get(k) for k in ("face_jpg", "heatmap_img", "lime_label")}
    return found


def load_known_faces(folder: str | os.PathLike, detector):
    """``people.KnownFaces`` from ``DIR/<name>/*.jpg``: the largest face of each photo, named by its folder.

    Photos without a face to recognise are listed in ``skipped``, not fatal.
    """
    from .people import KnownFaces
    from .sources import SourceError, is_image, read_image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (--known-faces wants one sub-folder per person)")
    people = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not people:
        raise ValueError(f"{folder}: no sub-folders: --known-faces wants one sub-folder of photos per person")
    known, vectors = KnownFaces(), []
    for person in people:
        for photo in sorted(p for p in person.rglob("*") if p.is_file() and is_image(p)):
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


def fill_people(table, refs) -> None:
    """Write each face's ``person`` (from ``people.assign``) into the run's table, in place."""
    if table is None or not refs:
        return
    rows = [r.row for r in refs]
    table.loc[table.index[rows], "person"] = [r.person for r in refs]


def analyze(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    model: str | os.PathLike | None = None,
    detector: str = DEFAULT_DETECTOR,
    explain: bool = True,
    lime_samples: int = LIME_SAMPLES,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    progress: bool = True,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    people: bool = True,
    **detector_options,
):
    """Faces, emotions and (optionally) LIME explanations for every file under ``paths``: a DataFrame.

    One row per face, plus one row per input without a face, that failed or that was skipped, with
    ``status`` and ``reason``. Columns: ``TABLE_COLUMNS``; ``df.attrs`` records the settings, model card
    and timing. The encoded images a report shows are not in it (memory): ``run`` keeps a bounded gallery
    of them. With ``cache`` (a folder), a stopped run resumes where it stopped. ``people``: faces grouped
    into people over the whole call (``person``: person_1, person_2 ... by how often they appear).
    """
    from .people import assign

    result = run(paths, model, detector, explain, lime_samples, jobs, backend, scheduler, progress, seed, cache,
                 gallery=0, people=people, detector_options=detector_options)
    fill_people(result.table, assign(result.faces))
    return result.table


def _dask_client(scheduler: str | None):
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError("--backend dask needs dask: pip install 'batchemo[dask]'") from None
    return Client(scheduler) if scheduler else Client(processes=True, n_workers=2, threads_per_worker=1)
