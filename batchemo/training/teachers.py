"""Teachers: the soft targets of distillation, computed once per run and cached in its checkpoint.

A teacher is any batchemo model file; the targets are the mean of the teachers' reads (a way of
``batchemo.tta``, chosen by ``Recipe.teacher_tta``) on each training face, or on K augmented views of it
(consistent teaching, ``Recipe.teacher_views``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.files import atomic_path
from ..core.records import CLASSES
from ..emotions.model import ModelCard
from ..sources.labelled import LabelledSet
from .pipeline import random_affine
from .recipe import Recipe

#: Cache files in the checkpoint folder: the teachers' probabilities (written last: they mark it complete)
#: and, with teacher views, the views themselves.
PROBS_FILE, VIEWS_FILE = "teacher_probs.npy", "teacher_views.npy"


def teacher_targets(recipe: Recipe, train_set: LabelledSet, val_set: LabelledSet, ckpt: Path, state, log=print):
    """The teachers' mean TTA probabilities on every training face, computed once and cached.

    Returns (probs, views). Without ``recipe.teacher_views``: probs (N, 7) on the faces as they are, views
    None. With K views: views (N, K, 48, 48) uint8, K random affine versions of each face, and probs
    (N, K, 7), the teachers' verdict on each view (cached as ``teacher_views.npy`` and ``teacher_probs.npy``).

    Precomputed rather than online: on 2 CPU cores, running two ``wide`` teachers and ``default`` with flip
    TTA on every augmented batch would add 2.9x the student's own training step (measured: 1.75 s vs 0.6 s
    per batch of 64); once per run it costs K passes over the training set. The flip-TTA mean (and a
    mirror network's two-turn mean) is mirror-invariant, so it stays right for a flipped face.
    Un-augmented faces are ones the teachers have largely memorised (training accuracy 0.8-0.9): their
    verdicts there say little more than the label, which is what the views are for. Mixup/cutmix mix these
    targets with the same lambda as the faces.
    """
    from ..emotions.evaluate import evaluate
    from ..emotions.model import load_model

    k = recipe.teacher_views
    shape = (len(train_set), k, len(CLASSES)) if k else (len(train_set), len(CLASSES))
    ways = [teacher_way(recipe, (ModelCard.load(t) or ModelCard("unknown")).architecture) for t in recipe.teachers]
    cached = _cached(recipe, ways, shape, ckpt, state)
    if cached is not None:
        names = ", ".join(Path(t).name for t in recipe.teachers)
        log(f"teachers: cached soft targets of {names}" + (f" on {k} views per face" if k else ""))
        return cached
    views = teacher_views(train_set.images, recipe) if k else None
    if k:
        log(f"teacher views: {k} augmented views of each of {len(train_set)} training faces")
    total = np.zeros(shape, np.float64)
    val_total = np.zeros((len(val_set), len(CLASSES)), np.float64)
    state.teachers = []
    for t, way in zip(recipe.teachers, ways):
        tm = load_model(t, runtime="keras")  # training keeps TensorFlow: no flatbuffers written beside teachers
        tm.tta = way
        if k:
            for j in range(k):
                total[:, j] += tm.predict(views[:, j])
        else:
            total += tm.predict(train_set.images)
        ev = evaluate(tm, val_set)
        val_total += ev.probabilities
        state.teachers.append({"file": Path(t).name, "architecture": tm.card.architecture, "tta": way,
                               "validation_accuracy": round(ev.accuracy, 4)})
        log(f"teacher {Path(t).name}: validation accuracy {ev.accuracy:.4f} ({way} TTA)")
    probs = (total / len(recipe.teachers)).astype(np.float32)
    if len(val_set):
        state.teacher_ensemble_accuracy = round(float((val_total.argmax(1) == val_set.labels).mean()), 4)
        log(f"teacher ensemble: validation accuracy {state.teacher_ensemble_accuracy:.4f}")
    ckpt.mkdir(parents=True, exist_ok=True)
    # the probabilities last: they mark it complete
    for path, arr in ((ckpt / VIEWS_FILE, views), (ckpt / PROBS_FILE, probs)):
        if arr is not None:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, arr)
    return probs, views


def teacher_way(recipe: Recipe, architecture: str) -> str:
    """How a teacher of this architecture reads a face under ``recipe.teacher_tta``."""
    if architecture != "mirror" or recipe.teacher_tta == "hflip":
        return "hflip"
    return "rot5" if recipe.teacher_tta == "auto" else "turns"


def teacher_views(images: np.ndarray, recipe: Recipe, batch: int = 4096) -> np.ndarray:
    """(N, K, 48, 48) uint8: K random affine versions of each face (the recipe's rotation, shear, zoom and
    shift; no flip, which the flip-invariant teachers cannot tell apart), seeded by the recipe."""
    import tensorflow as tf

    out = np.empty((len(images), recipe.teacher_views) + images.shape[1:], np.uint8)
    for j in range(recipe.teacher_views):
        tf.random.set_seed(recipe.seed * 7919 + j)
        for i in range(0, len(images), batch):
            x = tf.cast(images[i: i + batch], tf.float32)[..., None]
            out[i: i + batch, j] = np.clip(np.rint(random_affine(x, recipe).numpy()[..., 0]), 0, 255).astype(np.uint8)
    tf.random.set_seed(recipe.seed)  # the seed a fresh run trains with (``train`` set it so)
    return out




def _cached(recipe: Recipe, ways: list[str], shape: tuple, ckpt: Path, state) -> tuple | None:
    """(probs, views) from the checkpoint when the same teachers, read the same ways, left them; else None."""
    k = recipe.teacher_views
    cache, views_cache = ckpt / PROBS_FILE, ckpt / VIEWS_FILE
    names = [Path(t).name for t in recipe.teachers]
    if not (cache.exists() and (not k or views_cache.exists()) and state.teachers) or \
            [(t["file"], t.get("tta", "hflip")) for t in state.teachers] != list(zip(names, ways)):
        return None
    probs = np.load(cache)
    views = np.load(views_cache) if k else None
    if probs.shape == shape and (views is None or views.shape[:2] == shape[:2]):
        return probs, views
    return None
