"""Training the CNN: recipes, in-graph augmentation, per-epoch checkpoints, resume, history and curves.

A CPU run takes hours, so every epoch leaves a complete, resumable state in ``<out stem>.ckpt/``:
the full model with its optimizer (``last.keras``), the best weights so far, and ``state.json`` with the
history. ``--resume`` picks that up at the next epoch.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .datasets import LabelledSet, load_split
from .model import CLASSES, ModelCard, build
from .outputs import atomic_path, atomic_write_text


@dataclass
class Recipe:
    """Everything that decides how a model is trained; saved in the checkpoint and the model card."""

    arch: str = "default"
    epochs: int = 80
    batch_size: int = 64
    lr: float = 2e-3
    schedule: str = "cosine"  # "cosine" (with 1 warm-up epoch) or "plateau" (halve on a 5-epoch plateau)
    rotation: float = 10.0  # degrees
    shear: float = 0.1
    zoom: float = 0.1
    shift: float = 0.1  # fraction of the side
    hflip: bool = True
    erase: float = 0.0  # probability of random erasing (one grey rectangle of 4-25% of the face)
    patience: int = 15  # early stopping on validation accuracy
    seed: int = 1

    @classmethod
    def named(cls, name: str) -> "Recipe":
        if name == "seed":
            # The seed's recipe: Adam 1e-4, batch 512, 50 epochs, rotation/shear/zoom/flip augmentation.
            return cls(arch="seed", epochs=50, batch_size=512, lr=1e-4, schedule="plateau", shift=0.0)
        if name == "default":
            return cls()
        raise ValueError(f"unknown recipe {name!r}: choose default or seed")


@dataclass
class TrainState:
    """What ``state.json`` holds: the next epoch to run, the best so far, and the history rows."""

    recipe: dict
    epoch: int = 0
    best_val_accuracy: float = -1.0
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    data: str = ""
    train_faces: int = 0


class TrainingError(Exception):
    pass


def checkpoint_dir(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".ckpt")


def augment(x, recipe: Recipe, seed: int):
    """Random affine (rotation, shear, zoom, shift) and horizontal flip of a float batch, as one TF op.

    One projective transform per image costs far less on a CPU than a chain of Keras preprocessing layers.
    """
    import tensorflow as tf

    n = tf.shape(x)[0]
    size = tf.cast(tf.shape(x)[1], tf.float32)
    c = (size - 1.0) / 2.0
    u = lambda lo, hi: tf.random.uniform([n], lo, hi)  # noqa: E731
    theta = u(-1.0, 1.0) * recipe.rotation * math.pi / 180.0
    shear = u(-recipe.shear, recipe.shear)
    zoom = u(1.0 - recipe.zoom, 1.0 + recipe.zoom)
    tx = u(-recipe.shift, recipe.shift) * size
    ty = u(-recipe.shift, recipe.shift) * size
    cos, sin = tf.cos(theta), tf.sin(theta)
    # output -> input mapping: rotation . shear . (1/zoom), about the centre, then a shift
    m00 = cos / zoom
    m01 = (cos * shear - sin) / zoom
    m10 = sin / zoom
    m11 = (sin * shear + cos) / zoom
    a2 = c - m00 * c - m01 * c + tx
    b2 = c - m10 * c - m11 * c + ty
    zeros = tf.zeros_like(m00)
    transforms = tf.stack([m00, m01, a2, m10, m11, b2, zeros, zeros], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST",
    )
    if recipe.hflip:
        flip = tf.random.uniform([n, 1, 1, 1]) < 0.5
        out = tf.where(flip, tf.reverse(out, axis=[2]), out)
    if recipe.erase > 0:
        # Random erasing: hide a part of the face so no single region (say, the mouth) carries the class.
        side = tf.shape(x)[1]
        area = u(0.04, 0.25) * size * size
        aspect = tf.exp(u(math.log(0.5), math.log(2.0)))
        h = tf.minimum(tf.sqrt(area * aspect), size)
        w = tf.minimum(tf.sqrt(area / aspect), size)
        y0 = u(0.0, 1.0) * (size - h)
        x0 = u(0.0, 1.0) * (size - w)
        grid = tf.cast(tf.range(side), tf.float32)
        rows = (grid[None, :] >= y0[:, None]) & (grid[None, :] < (y0 + h)[:, None])
        cols = (grid[None, :] >= x0[:, None]) & (grid[None, :] < (x0 + w)[:, None])
        hit = rows[:, :, None] & cols[:, None, :] & (tf.random.uniform([n, 1, 1]) < recipe.erase)
        out = tf.where(hit[..., None], tf.fill(tf.shape(out), 0.5), out)
    return out


def _datasets(train: LabelledSet, val: LabelledSet, recipe: Recipe):
    import tensorflow as tf

    def prep(x, y):
        return tf.cast(x, tf.float32)[..., None] / 255.0, y

    def aug(x, y):
        return augment(x, recipe, recipe.seed), y

    tr = (
        tf.data.Dataset.from_tensor_slices((train.images, train.labels))
        .shuffle(len(train), seed=recipe.seed, reshuffle_each_iteration=True)
        .batch(recipe.batch_size)
        .map(prep)
        .map(aug, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    va = tf.data.Dataset.from_tensor_slices((val.images, val.labels)).batch(512).map(prep).cache()
    return tr, va


def _lr_at(recipe: Recipe, epoch: int, step_frac: float = 0.0) -> float:
    if recipe.schedule != "cosine":
        return recipe.lr
    t = epoch + step_frac
    if t < 1.0:  # one warm-up epoch
        return recipe.lr * max(t, 0.05)
    progress = min((t - 1.0) / max(recipe.epochs - 1.0, 1.0), 1.0)
    return recipe.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def plot_curves(history: list[dict], path: str | os.PathLike) -> None:
    """Loss and accuracy, train vs validation, side by side (as the seed plots them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        ax.plot(ep, [h[key] for h in history], label="train")
        ax.plot(ep, [h["val_" + key] for h in history], label="validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _write_history(state: TrainState, out: Path) -> None:
    import pandas as pd

    from .outputs import write_table

    write_table(pd.DataFrame(state.history), out.with_name(out.stem + ".history.csv"))
    plot_curves(state.history, out.with_name(out.stem + ".curves.png"))


def train(
    data: str | os.PathLike,
    out: str | os.PathLike,
    recipe: Recipe | None = None,
    resume: bool = False,
    log=print,
) -> Path:
    """Train on DATA's train split, choose on its validation split, write ``out`` + card, history, curves."""
    out = Path(out)
    if out.suffix != ".keras":
        raise TrainingError(f"{out}: the model file must end in .keras")
    ckpt = checkpoint_dir(out)
    state_path = ckpt / "state.json"
    state: TrainState | None = None
    if resume:
        if not state_path.exists():
            raise TrainingError(f"{state_path}: nothing to resume (no checkpoint of an earlier run)")
        state = TrainState(**json.loads(state_path.read_text()))
        recipe = Recipe(**{**state.recipe, **({"epochs": recipe.epochs} if recipe else {})})
    recipe = recipe or Recipe()

    t0 = time.time()
    train_set = load_split(data, "train", require_all=True)
    val_set = load_split(data, "validation")
    for s in (train_set, val_set):
        if s.skipped:
            log(f"skipped {len(s.skipped)} unreadable image(s) in {s.origin}, e.g. {s.skipped[0][0]}")
    import keras  # after the data checks: a bad path fails in a second, not after TensorFlow's start-up

    log(f"data: {len(train_set)} training and {len(val_set)} validation faces from {data} ({time.time() - t0:.0f} s)")

    keras.utils.set_random_seed(recipe.seed)
    if state is not None and (ckpt / "last.keras").exists():
        model = keras.saving.load_model(ckpt / "last.keras")
        log(f"resuming from epoch {state.epoch} (best validation accuracy {state.best_val_accuracy:.4f})")
    else:
        state = TrainState(recipe=asdict(recipe), data=str(data))
        model = build(recipe.arch)
        model.compile(
            optimizer=keras.optimizers.Adam(recipe.lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    if state.epoch >= recipe.epochs:
        log(f"already trained for {state.epoch} epochs")
    state.train_faces = len(train_set)
    tr, va = _datasets(train_set, val_set, recipe)
    steps = math.ceil(len(train_set) / recipe.batch_size)
    ckpt.mkdir(parents=True, exist_ok=True)

    class Checkpoint(keras.callbacks.Callback):
        """Per-epoch: last model + optimizer, best weights, state.json, history CSV and curves."""

        def on_train_batch_begin(self, batch, logs=None):
            if recipe.schedule == "cosine":
                self.model.optimizer.learning_rate.assign(_lr_at(recipe, self._epoch, batch / steps))

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch
            self._t = time.time()

        def on_epoch_end(self, epoch, logs=None):
            row = {k: float(v) for k, v in (logs or {}).items()}
            row.update(epoch=epoch + 1, lr=float(self.model.optimizer.learning_rate), seconds=time.time() - self._t)
            state.history.append(row)
            state.epoch = epoch + 1
            if row.get("val_accuracy", -1) > state.best_val_accuracy:
                state.best_val_accuracy, state.best_epoch = row["val_accuracy"], epoch + 1
                with atomic_path(ckpt / "best.weights.h5") as tmp:
                    self.model.save_weights(tmp)
            with atomic_path(ckpt / "last.keras") as tmp:
                self.model.save(tmp)
            atomic_write_text(state_path, json.dumps(asdict(state), indent=1))
            _write_history(state, out)

    callbacks = [Checkpoint()]
    if recipe.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau("val_accuracy", factor=0.5, patience=5, min_lr=1e-6))
    # Early stopping counts from the best epoch in the state, so it survives a resume.
    callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(
        model, "stop_training", epoch + 1 - state.best_epoch >= recipe.patience)))
    if state.epoch < recipe.epochs:
        model.fit(
            tr, validation_data=va, epochs=recipe.epochs, initial_epoch=state.epoch, callbacks=callbacks,
            shuffle=False,  # tf.data shuffles every epoch already
            verbose=1 if sys.stderr.isatty() else 2,
        )
    return finalize(out, state, val_set, log)


def finalize(out: Path, state: TrainState, val_set: LabelledSet, log=print) -> Path:
    """Write the best weights as ``out`` (no optimizer state: a few MB) with its measured model card."""
    from .evaluate import evaluate
    from .model import EmotionModel

    ckpt = checkpoint_dir(out)
    recipe = Recipe(**state.recipe)
    model = build(recipe.arch)
    model.load_weights(ckpt / "best.weights.h5")
    card = ModelCard(
        architecture=recipe.arch,
        training_data=state.data,
        training_faces=state.train_faces,
        validation_faces=len(val_set),
        recipe=state.recipe,
        epochs=state.best_epoch,
        parameters=int(model.count_params()),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    )
    card.recipe = {**state.recipe, "epochs_run": state.epoch}
    result = evaluate(EmotionModel(model, card), val_set)
    card.validation_accuracy = round(result.accuracy, 4)
    card.per_class_f1 = {c: round(f, 4) for c, f in result.per_class_f1().items()}
    with atomic_path(out) as tmp:
        model.save(tmp)
    card.save(out)
    _write_history(state, out) if state.history else None
    log(
        f"wrote {out}: best epoch {state.best_epoch} of {state.epoch}, "
        f"validation accuracy {result.accuracy:.4f} (hflip TTA), macro F1 {result.macro_f1:.4f}"
    )
    return out
