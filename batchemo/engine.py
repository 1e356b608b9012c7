"""The batch engine: strings sources -> faces -> predictions -> explanations together, in parallel.

Work items are file paths, not decoded arrays, so any joblib backend can run them (processes here, a Dask
cluster through joblib's dask backend), and each worker loads the model and the detector once, on its
first item. Results stream back in input order; only small encoded images are kept, so memory stays flat
as the collection grows.
"""
from __future__ import annotations

import io
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .explain import LimeSettings
from .model import CLASSES

STATUS_OK, STATUS_NO_FACES, STATUS_FAILED = "ok", "no_faces", "failed"

#: The columns of the CSV / JSON output, in order (one row per face; one row per image without faces).
TABLE_COLUMNS = [
    "path", "folder", "status", "reason", "face_index", "x", "y", "w", "h", "label", "confidence",
    *(f"p_{c}" for c in CLASSES), "lime_label", "lime_score", "image_width", "image_height",
]
#: Encoded images carried for the report, not written to CSV / JSON.
IMAGE_COLUMNS = ["thumbnail", "face_jpg", "heatmap_img", "lime_img"]


@dataclass
class RunSettings:
    """Everything a worker needs to process one path; small and picklable."""

    model_path: str | None = None
    detector: str = "haar"
    detector_options: dict = field(default_factory=dict)
    explain: bool = True
    lime: LimeSettings = field(default_factory=LimeSettings)
    max_side: int = 2048  # images are decoded at most this long (memory)
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


# ---------------------------------------------------------------- encoding helpers
def encode(rgb: np.ndarray, fmt: str = ".jpg", quality: int = 85) -> bytes:
    import cv2

    bgr = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
    ok, buf = cv2.imencode(fmt, np.ascontiguousarray(bgr), params)
    if not ok:
        raise ValueError("image encoding failed")
    return buf.tobytes()


EMOTION_COLOURS = {  # RGB, shared with the report's CSS
    "angry": (220, 50, 47), "disgust": (133, 153, 0), "fear": (108, 113, 196), "happy": (230, 160, 0),
    "neutral": (120, 120, 120), "sad": (38, 139, 210), "surprise": (211, 54, 130),
}


def annotate(rgb: np.ndarray, faces: Sequence[tuple], thumb_side: int) -> np.ndarray:
    """A thumbnail with a box and 'label 87%' over each face, as the seed overlays them.

    ``faces`` holds (box in ``rgb`` pixels, label, confidence, face index).
    """
    import cv2

    h, w = rgb.shape[:2]
    f = min(1.0, thumb_side / max(h, w))
    img = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA) if f < 1 else rgb.copy()
    th = max(1, round(max(img.shape[:2]) / 240))
    for box, label, conf, idx in faces:
        x, y, bw, bh = (int(round(v * f)) for v in (box.x, box.y, box.w, box.h))
        colour = EMOTION_COLOURS.get(label, (255, 255, 0))
        cv2.rectangle(img, (x, y), (x + bw, y + bh), colour, th + 1)
        text = f"#{idx} {label} {conf:.0%}"
        scale = max(0.4, img.shape[1] / 900)
        (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, th)
        ty = y - 4 if y - tht - 6 > 0 else y + bh + tht + 4
        cv2.rectangle(img, (x, ty - tht - 3), (x + tw + 4, ty + base - 1), colour, -1)
        cv2.putText(img, text, (x + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), th, cv2.LINE_AA)
    return img


def face_rows(
    faces, probabilities: np.ndarray, explanations: Sequence[dict] | None, base: dict, colour_crops=None
) -> list[dict]:
    """Table rows for the faces of one image or frame: box, label, probabilities, encoded images."""
    rows = []
    for k, (face, probs) in enumerate(zip(faces, probabilities)):
        label = CLASSES[int(np.argmax(probs))]
        row = dict(base, status=STATUS_OK, reason="", face_index=face.index, x=face.box.x, y=face.box.y,
                   w=face.box.w, h=face.box.h, label=label, confidence=float(np.max(probs)))
        row.update({f"p_{c}": float(p) for c, p in zip(CLASSES, probs)})
        crop_img = colour_crops[k] if colour_crops is not None else face.crop
        row["face_jpg"] = encode(square(crop_img, 112), ".jpg", 90)
        if explanations is not None:
            exp = explanations[k].get(label) or next(iter(explanations[k].values()))
            row["lime_label"], row["lime_score"] = exp.label, exp.score
            row["heatmap_img"], row["lime_img"] = explanation_images(face.crop, exp)
        rows.append(row)
    return rows


def explanation_images(crop: np.ndarray, exp, side: int = 112) -> tuple[bytes, bytes]:
    """(heatmap, superpixel boundaries) of one explanation as JPEG bytes for a report."""
    import cv2

    from .explain import heatmap_image

    heat = encode(heatmap_image(crop, exp.heatmap, side), ".jpg", 88)
    bounds = encode(cv2.resize(exp.boundaries, (side, side), interpolation=cv2.INTER_NEAREST), ".jpg", 88)
    return heat, bounds


def square(img: np.ndarray, side: int) -> np.ndarray:
    """A face crop resized to ``side`` x ``side`` for a report (black when the crop is empty)."""
    import cv2

    if img.size == 0:
        return np.zeros((side, side, 3), np.uint8)
    interp = cv2.INTER_AREA if min(img.shape[:2]) > side else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img), (side, side), interpolation=interp)


# ---------------------------------------------------------------- one work item
def process_image(path: str, settings: RunSettings, root: str | None = None) -> list[dict]:
    """Everything batchemo does to one image file; never raises for a bad file (status + reason instead)."""
    from .detect import crop_face, to_gray
    from .explain import explain_faces
    from .records import Face
    from .sources import SourceError, read_image

    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    folder = os.path.dirname(rel) or "."
    base = {"path": path, "folder": folder}
    try:
        rgb, scale = read_image(path, settings.max_side)
    except SourceError as e:
        return [dict(base, status=STATUS_FAILED, reason=e.reason)]
    except MemoryError:
        return [dict(base, status=STATUS_FAILED, reason="out of memory while decoding")]
    h, w = rgb.shape[:2]
    base.update(image_width=round(w / scale), image_height=round(h / scale))
    model = worker_model(settings.model_path, settings.threads_per_worker)
    detector = worker_detector(settings.detector, settings.detector_options)
    boxes = detector.detect(rgb)
    if not boxes:
        thumb = encode(annotate(rgb, [], settings.thumb_side))
        return [dict(base, status=STATUS_NO_FACES, reason="no face found", thumbnail=thumb)]
    gray = to_gray(rgb)
    faces = [Face(path, i, b.scaled(1 / scale), crop_face(gray, b)) for i, b in enumerate(boxes)]
    colour = [rgb[max(b.y, 0): b.y + b.h, max(b.x, 0): b.x + b.w] for b in boxes]
    probs = model.predict(np.stack([f.crop for f in faces]))
    exps = None
    if settings.explain:
        exps = explain_faces(model, [f.crop for f in faces], settings=settings.lime,
                             n_jobs=1 if settings.threads_per_worker == 1 else 2)
    rows = face_rows(faces, probs, exps, base, colour)
    thumb = encode(annotate(rgb, [(b, r["label"], r["confidence"], r["face_index"]) for b, r in zip(boxes, rows)],
                            settings.thumb_side))
    for r in rows:
        r["thumbnail"] = thumb  # the same bytes object for every face of the image
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


def collect(paths: Iterable[str | os.PathLike]) -> list[tuple[str, str | None]]:
    """(file, the folder it was found under) for every image under ``paths``, in a stable order."""
    from .sources import find_media, is_video

    items = []
    for p in map(Path, paths):
        root = str(p) if p.is_dir() else None
        items += [(str(f), root) for f in find_media([p]) if not is_video(f)]  # videos: see video.run_videos
    return items


def analyze(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    model: str | os.PathLike | None = None,
    detector: str = "haar",
    explain: bool = True,
    lime_samples: int = 1000,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    progress: bool = True,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    **detector_options,
):
    """Faces, emotions and (optionally) LIME explanations for every image under ``paths``.

    Returns a pandas DataFrame, one row per face (plus one row per image without a face or that failed,
    with ``status`` and ``reason``). Columns: see ``TABLE_COLUMNS``; the encoded images the report uses are
    in ``IMAGE_COLUMNS``. ``df.attrs`` records the settings, model card and timing. With ``cache`` (a
    folder), each image's rows are stored as they are computed and reused by later runs with the same
    files, model and settings: a stopped run resumes where it stopped.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    from .detect import make_detector

    make_detector(detector, **detector_options)  # fail fast (missing dlib, bad option) before any work
    settings = RunSettings(
        model_path=str(model) if model else None, detector=detector, detector_options=detector_options,
        explain=explain, lime=LimeSettings(num_samples=lime_samples, seed=seed),
    )
    card = worker_model(settings.model_path).card  # loaded once here, reused by in-process work
    items = collect(paths)
    t0 = time.time()
    rows: list[dict] = []
    client = None
    if backend == "dask":
        client = _dask_client(scheduler)
    store = None
    if cache is not None:
        from .cache import ResultCache

        store = ResultCache(cache, settings)
    known = [store.get(p, r) if store else None for p, r in items]
    todo = [item for item, rows_ in zip(items, known) if rows_ is None]
    try:
        bar = tqdm(total=len(items), unit="img", desc="batchemo", disable=not progress, file=sys.stderr)
        fresh = iter_results(todo, settings, jobs, backend) if todo else iter([])
        for (path, root), result in zip(items, known):
            if result is None:  # results come back in input order, so the next fresh one is this item's
                result = next(fresh)
                if store is not None:
                    store.put(path, root, result)
            rows += result
            bar.update(1)
        bar.close()
    finally:
        if client is not None:
            client.close()
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS + IMAGE_COLUMNS)
    for col in ("face_index", "x", "y", "w", "h", "image_width", "image_height"):
        df[col] = df[col].astype("Int64")
    df["reason"] = df["reason"].fillna("")
    df.attrs.update(
        seconds=time.time() - t0, images=len(items), model=card.__dict__, detector=detector,
        detector_options=detector_options, explain=explain, lime_samples=lime_samples, jobs=jobs,
        backend=backend, inputs=[str(p) for p in paths], cached=len(items) - len(todo),
    )
    return df


def _dask_client(scheduler: str | None):
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError("--backend dask needs dask: pip install 'batchemo[dask]'") from None
    return Client(scheduler) if scheduler else Client(processes=True, n_workers=2, threads_per_worker=1)


def table(df):
    """The CSV / JSON view: the documented columns, without the encoded images."""
    return df[TABLE_COLUMNS]


def summary(df) -> dict:
    """Counts a person reads first: images scanned, with faces, faces, failures."""
    per_image = df.groupby("path", sort=False)["status"].first()
    return {
        "images": int(df.attrs.get("images", len(per_image))),
        "images_with_faces": int((per_image == STATUS_OK).sum()),
        "images_without_faces": int((per_image == STATUS_NO_FACES).sum()),
        "faces": int((df["status"] == STATUS_OK).sum()),
        "failed": int((per_image == STATUS_FAILED).sum()),
        "seconds": float(df.attrs.get("seconds", 0.0)),
    }
