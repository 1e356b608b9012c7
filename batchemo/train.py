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
from .tta import WAYS as TTA_WAYS, passes as tta_passes
from .tta import angles as tta_angles, turn_matrix
from .tta import views as tta_views
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
    optimizer: str = "adam"  # "adam" or "sgd-nesterov" (SGD with Nesterov momentum)
    momentum: float = 0.9  # sgd-nesterov only
    label_smoothing: float = 0.0  # the hard target becomes (1 - e) one-hot + e / 7
    mixup: float = 0.0  # Beta(a, a) parameter of mixup; 0: off
    cutmix: float = 0.0  # Beta(a, a) parameter of cutmix; 0: off (both on: each batch picks one, 50/50)
    mix_prob: float = 1.0  # probability that a batch is mixed (when mixup or cutmix is on)
    teachers: list = field(default_factory=list)  # .keras files; their mean (read as teacher_tta says): soft target
    distill_alpha: float = 0.9  # weight of the distillation term (1 - alpha on the hard labels)
    distill_temperature: float = 3.0
    # Consistent teaching (Beyer et al. 2022): 0 = the teachers judge each training face once, un-augmented;
    # K > 0 = they judge K augmented views of it (precomputed, cached), and each epoch the student sees one
    # of those views, at random, with the teachers' verdict on that very view.
    teacher_views: int = 0
    # How teachers read a face: "hflip", every teacher with the flip (mirror-invariant targets); "auto", a
    # mirror-symmetric teacher with its two turns instead (batchemo.tta: its flip is its one pass; the
    # turns added 0.4 points to the three-teacher ensemble on validation), any other with the flip; "turns", a
    # mirror-symmetric teacher with its five turns (2.5x the passes of "auto": kd5 alone 71.2% against 70.7%).
    teacher_tta: str = "hflip"
    # "mixed_bfloat16": bfloat16 activations, float32 weights, for CPUs with AVX512_BF16. Measured here:
    # 258 vs 514 ms per batch of 64 (default arch, plain loss), 66 vs 90 s per distillation epoch. The
    # shipped file is float32 either way.
    precision: str = "float32"
    tta: str = "hflip"  # what the card asks every reader to do: one of batchemo.tta.WAYS
    init: str = ""  # a .keras model whose weights the run starts from (fine-tuning); "" = random initialisation
    # Fit the read the card ships: the loss sees the mean of the network over the card's views of each face
    # (``tta``), not one pass, at one pass of work per view each step. kd5 fine-tuned so against five-turn
    # teachers read 70.86% with two turns (a prototype: 70.99%); fit on one pass, the same teachers, 70.49%.
    fit_read: bool = False
    # Weight averaging (stochastic weight averaging, Izmailov et al. 2018): from this epoch (1-based) on, the
    # uniform mean of every epoch's weights is read each way too, and kept wherever it reads better than any
    # single epoch. Late epochs of a cosine schedule sit around one minimum; their mean lies nearer its
    # centre. Batch-norm statistics are averaged with the rest (late epochs' differ little). 0: off.
    average_from: int = 0

    @classmethod
    def named(cls, name: str) -> "Recipe":
        if name == "seed":
            # The seed's recipe: Adam 1e-4, batch 512, 50 epochs, rotation/shear/zoom/flip augmentation.
            return cls(arch="seed", epochs=50, batch_size=512, lr=1e-4, schedule="plateau", shift=0.0)
        if name == "default":
            return cls()
        if name == "teacher":
            # A bigger, slower network for distillation: SGD + Nesterov (as in Khaireddin & Chen 2021),
            # a longer cosine schedule and mixup (the wider net overfits more). No label smoothing: it
            # makes teachers worse at distillation (Mueller et al. 2019).
            return cls(arch="wide", epochs=100, optimizer="sgd-nesterov", lr=0.05, mixup=0.2, patience=100)
        if name == "mirror":
            # default's recipe on the mirror-symmetric network. Its one pass is its own flip average, so
            # the second pass reads two turns of the face instead (batchemo.tta). No early stopping:
            # validation swings +-5 points while the learning rate is high, and the best epochs come at
            # the end of the cosine schedule.
            return cls(arch="mirror", tta="rot5", patience=100)
        if name == "distill":
            # The shipped architecture, taught by --teacher models: default's Adam recipe, 120 epochs.
            return cls(epochs=120, patience=120)
        raise ValueError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise TrainingError(f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise TrainingError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.mixup < 0 or self.cutmix < 0 or not 0.0 <= self.mix_prob <= 1.0:
            raise TrainingError("mixup and cutmix take an alpha >= 0; mix probability must be in [0, 1]")
        if self.teacher_views < 0 or (self.teacher_views and not self.teachers):
            raise TrainingError("teacher views need --teacher models and a count >= 0")
        if self.teacher_tta not in TEACHER_TTA:
            raise TrainingError(f"unknown teacher reading {self.teacher_tta!r}: choose one of {', '.join(TEACHER_TTA)}")
        if not 0.0 <= self.distill_alpha <= 1.0 or self.distill_temperature <= 0:
            raise TrainingError("distillation alpha must be in [0, 1] and the temperature > 0")
        for t in self.teachers:
            if not Path(t).is_file():
                raise TrainingError(f"{t}: teacher model not found")
        if self.precision not in ("float32", "mixed_bfloat16"):
            raise TrainingError(f"unknown precision {self.precision!r}: choose float32 or mixed_bfloat16")
        if self.tta not in TTA_WAYS:
            raise TrainingError(f"unknown test-time augmentation {self.tta!r}: choose one of {', '.join(TTA_WAYS)}")
        if self.init and not Path(self.init).is_file():
            raise TrainingError(f"{self.init}: --init model not found")
        if self.fit_read and tta_passes(self.tta) < 2:
            raise TrainingError(f"fitting the read needs a read of two views or more, not {self.tta!r}: "
                                f"--tta hflip, rot5 or turns")
        if self.average_from < 0 or self.average_from > self.epochs:
            raise TrainingError(f"weight averaging starts at an epoch from 1 to --epochs ({self.epochs}), "
                                f"not {self.average_from}")
        if self.fit_read and self.tta == "hflip" and self.arch == "mirror":
            raise TrainingError("fitting the read needs a read of two views or more, not 'hflip' on a mirror "
                                "network, whose flip is its one pass: --tta rot5 or turns")


RECIPES = ("default", "seed", "teacher", "distill", "mirror")
TEACHER_TTA = ("hflip", "auto", "turns")  # how teachers read a face: see Recipe.teacher_tta
OPTIMIZERS = ("adam", "sgd-nesterov")


@dataclass
class TrainState:
    """What ``state.json`` holds: the next epoch to run, the best so far, and the history rows."""

    recipe: dict
    epoch: int = 0
    best_val_accuracy: float = -1.0
    best_epoch: int = 0
    # The best epoch read each way (batchemo.tta: "none" one pass, "hflip" flip, "rot5" two turns) ->
    # [accuracy, epoch], each with its weights in best-<way>.weights.h5: the card's way of reading a face
    # can be chosen after the run.
    best_by_tta: dict = field(default_factory=dict)
    best_way: str = ""  # the way best.weights.h5 was chosen by (the recipe's tta when it was saved)
    history: list[dict] = field(default_factory=list)
    data: str = ""
    train_faces: int = 0
    teachers: list = field(default_factory=list)  # [{"file", "validation_accuracy"}], measured at the start
    teacher_ensemble_accuracy: float | None = None
    averaged: int = 0  # epochs in the running weight average (average.weights.h5), with Recipe.average_from
    # way -> first epoch of the weight average that best-<way>.weights.h5 holds (absent: one epoch's weights);
    # "" holds best.weights.h5's
    best_averaged: dict = field(default_factory=dict)


class TrainingError(Exception):
    pass


def checkpoint_dir(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".ckpt")


def augment(x, recipe: Recipe, seed: int, affine: bool = True):
    """Random affine (rotation, shear, zoom, shift) and horizontal flip of a float batch, as one TF op.

    One projective transform per image costs far less on a CPU than a chain of Keras preprocessing layers.
    ``affine=False`` leaves the geometry alone (teacher views are already transformed).
    """
    import tensorflow as tf

    n = tf.shape(x)[0]
    size = tf.cast(tf.shape(x)[1], tf.float32)
    u = lambda lo, hi: tf.random.uniform([n], lo, hi)  # noqa: E731
    out = _affine(x, recipe) if affine else x
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


def _affine(x, recipe: Recipe):
    """One random rotation . shear . zoom . shift per face of a float batch."""
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
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST",
    )


def _beta(alpha: float):
    """One draw of Beta(alpha, alpha), from two gamma draws (TF has no beta sampler)."""
    import tensorflow as tf

    g1 = tf.random.gamma([], alpha)
    g2 = tf.random.gamma([], alpha)
    return g1 / (g1 + g2 + 1e-12)


def targets(labels, recipe: Recipe, teacher_probs=None):
    """(N, 14) training targets: the hard label, one-hot and label-smoothed (columns 0-6), and the teachers'
    probabilities (columns 7-13, zeros when there are no teachers)."""
    import tensorflow as tf

    k = len(CLASSES)
    hard = tf.one_hot(labels, k) * (1.0 - recipe.label_smoothing) + recipe.label_smoothing / k
    soft = tf.zeros_like(hard) if teacher_probs is None else tf.cast(teacher_probs, tf.float32)
    return tf.concat([hard, soft], axis=1)


def mix_batch(x, y, recipe: Recipe):
    """Mixup or cutmix of a batch with its reverse (one lambda per batch), targets mixed alike.

    Returns (x, y, lam). With probability 1 - mix_prob (or both alphas 0) the batch passes unchanged, lam = 1.
    Cutmix pastes a box of the partner face covering 1 - lam of the area; lam is the area actually kept.
    """
    import tensorflow as tf

    one = tf.constant(1.0)
    if recipe.mixup <= 0 and recipe.cutmix <= 0:
        return x, y, one
    partner_x, partner_y = tf.reverse(x, [0]), tf.reverse(y, [0])
    do_mix = tf.random.uniform([]) < recipe.mix_prob

    def mixup():
        lam = _beta(recipe.mixup)
        return lam * x + (1 - lam) * partner_x, lam

    def cutmix():
        lam = _beta(recipe.cutmix)
        side = tf.shape(x)[1]
        size = tf.cast(side, tf.float32)
        cut = tf.sqrt(1.0 - lam) * size
        cy, cx = tf.random.uniform([], 0.0, size), tf.random.uniform([], 0.0, size)
        y0, y1 = tf.clip_by_value(cy - cut / 2, 0.0, size), tf.clip_by_value(cy + cut / 2, 0.0, size)
        x0, x1 = tf.clip_by_value(cx - cut / 2, 0.0, size), tf.clip_by_value(cx + cut / 2, 0.0, size)
        grid = tf.cast(tf.range(side), tf.float32) + 0.5
        rows = (grid >= y0) & (grid < y1)
        cols = (grid >= x0) & (grid < x1)
        box = tf.cast(rows[:, None] & cols[None, :], tf.float32)[None, :, :, None]
        kept = 1.0 - tf.reduce_mean(box)
        return x * (1.0 - box) + partner_x * box, kept

    if recipe.mixup > 0 and recipe.cutmix > 0:
        mixed, lam = tf.cond(tf.random.uniform([]) < 0.5, cutmix, mixup)
    elif recipe.cutmix > 0:
        mixed, lam = cutmix()
    else:
        mixed, lam = mixup()
    lam = tf.where(do_mix, lam, one)
    x = tf.where(do_mix, mixed, x)
    return x, lam * y + (1.0 - lam) * partner_y, lam


def _datasets(train: LabelledSet, val: LabelledSet, recipe: Recipe, teacher_probs=None, views=None):
    """(train, validation) tf.data pipelines. With ``views`` ((N, K, 48, 48) uint8 teacher views, and
    ``teacher_probs`` (N, K, 7) the teachers' verdict on each), every epoch gives each face one of its views
    at random (its mirror image half the time: the teachers are flip-invariant), with that view's targets."""
    import tensorflow as tf

    def prep(x, y):
        return tf.cast(x, tf.float32)[..., None] / 255.0, y

    def aug(x, y):
        return augment(x, recipe, recipe.seed, affine=views is None), y

    def mix(x, y):
        x, y, _ = mix_batch(x, y, recipe)
        return x, y

    def pick(v, y, t):
        # after the shuffle: tf.data replays the same random draws every epoch, in batch order
        j = tf.random.uniform([tf.shape(v)[0]], 0, tf.shape(v)[1], tf.int32)
        return tf.gather(v, j, batch_dims=1), y, tf.gather(t, j, batch_dims=1)

    soft = np.zeros((len(train), len(CLASSES)), np.float32) if teacher_probs is None else teacher_probs
    tr = tf.data.Dataset.from_tensor_slices(
        (train.images if views is None else views, train.labels, soft.astype(np.float32))
    ).shuffle(len(train), seed=recipe.seed, reshuffle_each_iteration=True).batch(recipe.batch_size)
    if views is not None:
        tr = tr.map(pick)
    tr = (
        tr.map(lambda x, y, t: (x, targets(y, recipe, t if teacher_probs is not None else None)))
        .map(prep)
        .map(aug, num_parallel_calls=tf.data.AUTOTUNE)
        .map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    )
    # Validation: plain one-hot labels, no teachers: val_loss is the ordinary cross-entropy.
    va = (
        tf.data.Dataset.from_tensor_slices((val.images, val.labels)).batch(512)
        .map(lambda x, y: (x, targets(y, Recipe())))
        .map(prep)
    )
    if recipe.fit_read:  # the read's views of each (augmented, mixed) face: one input each
        tr, va = (d.map(lambda x, y: (read_views(x, recipe.tta), y), num_parallel_calls=tf.data.AUTOTUNE)
                  for d in (tr, va))
    return tr.prefetch(tf.data.AUTOTUNE), va.cache()


def read_views(x, way: str) -> tuple:
    """The views of a float (N, 48, 48, 1) batch that ``way`` averages, as TF ops: ``tta.views``'s pixels."""
    import tensorflow as tf

    if way == "hflip":
        return x, tf.reverse(x, axis=[2])
    flat = tf.reshape(x, [tf.shape(x)[0], -1])
    return tuple(tf.reshape(flat @ tf.constant(turn_matrix(d)), tf.shape(x)) if d else x for d in tta_angles(way))


def read_model(student, way: str):
    """``student`` read as the card reads a face: one input per view of ``way``, the mean of its answers.
    What ``fit_read`` trains; the student inside it is what ships."""
    import keras

    views = [keras.Input(student.input_shape[1:], name=f"view{i}") for i in range(tta_passes(way))]
    return keras.Model(views, keras.layers.Average(dtype="float32")([student(v) for v in views]), name="read")


def _register():
    """The loss and metric that read the (N, 14) targets; registered so that ``last.keras`` reloads."""
    import keras
    from keras import ops

    k = len(CLASSES)

    @keras.saving.register_keras_serializable(package="batchemo")
    class DistillLoss(keras.losses.Loss):
        """(1 - alpha) CE(hard target, student) + alpha T^2 KL(teacher^(1/T) || student^(1/T)).

        Tempered distributions are softmax(log p / T). Rows without teacher probabilities (all zero, as in
        validation) get the cross-entropy alone. With alpha = 0 this is cross-entropy with soft targets.
        """

        def __init__(self, alpha=0.0, temperature=1.0, name="distill_loss", **kw):
            super().__init__(name=name, **kw)
            self.alpha, self.temperature = float(alpha), float(temperature)

        def call(self, y_true, y_pred):
            eps = 1e-7
            hard, soft = y_true[:, :k], y_true[:, k:]
            logp = ops.log(ops.clip(y_pred, eps, 1.0))
            ce = -ops.sum(hard * logp, axis=-1)
            if self.alpha <= 0:
                return ce
            t = self.temperature
            has = ops.cast(ops.sum(soft, axis=-1) > 0.5, "float32")
            log_s = ops.log_softmax(logp / t, axis=-1)
            log_t = ops.log_softmax(ops.log(ops.clip(soft, eps, 1.0)) / t, axis=-1)
            kl = ops.sum(ops.exp(log_t) * (log_t - log_s), axis=-1) * t * t
            a = self.alpha * has
            return (1.0 - a) * ce + a * kl

        def get_config(self):
            return {**super().get_config(), "alpha": self.alpha, "temperature": self.temperature}

    @keras.saving.register_keras_serializable(package="batchemo")
    def target_accuracy(y_true, y_pred):
        return ops.cast(ops.argmax(y_true[:, :k], axis=-1) == ops.argmax(y_pred, axis=-1), "float32")

    return DistillLoss, target_accuracy


def compile_model(model, recipe: Recipe, optimizer=None):
    """Compile with the recipe's optimizer (or an existing one, keeping its state) and the distill loss."""
    import keras

    DistillLoss, target_accuracy = _register()
    if optimizer is None:
        if recipe.optimizer == "sgd-nesterov":
            optimizer = keras.optimizers.SGD(recipe.lr, momentum=recipe.momentum, nesterov=True)
        else:
            optimizer = keras.optimizers.Adam(recipe.lr)
    alpha = recipe.distill_alpha if recipe.teachers else 0.0
    model.compile(
        optimizer=optimizer,
        loss=DistillLoss(alpha, recipe.distill_temperature),
        metrics=[keras.metrics.MeanMetricWrapper(target_accuracy, name="accuracy")],
    )
    return model


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the confidence-weighted gap |accuracy - confidence| over equal-width confidence bins."""
    if len(labels) == 0:
        return float("nan")
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


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
    verdicts there say little more than the label, which is what the views are for. Mixup/cutmix mix these targets with the same lambda as the faces.
    """
    from .evaluate import evaluate
    from .model import load_model

    cache, views_cache = ckpt / "teacher_probs.npy", ckpt / "teacher_views.npy"
    k = recipe.teacher_views
    names = [Path(t).name for t in recipe.teachers]
    shape = (len(train_set), k, len(CLASSES)) if k else (len(train_set), len(CLASSES))
    ways = [teacher_way(recipe, (ModelCard.load(t) or ModelCard("unknown")).architecture) for t in recipe.teachers]
    if cache.exists() and (not k or views_cache.exists()) and state.teachers and \
            [(t["file"], t.get("tta", "hflip")) for t in state.teachers] == list(zip(names, ways)):
        probs = np.load(cache)
        views = np.load(views_cache) if k else None
        if probs.shape == shape and (views is None or views.shape[:2] == (len(train_set), k)):
            log(f"teachers: cached soft targets of {', '.join(names)}" + (f" on {k} views per face" if k else ""))
            return probs, views
    views = teacher_views(train_set.images, recipe) if k else None
    if k:
        log(f"teacher views: {k} augmented views of each of {len(train_set)} training faces")
    total = np.zeros(shape, np.float64)
    val_total = np.zeros((len(val_set), len(CLASSES)), np.float64)
    state.teachers = []
    for t, way in zip(recipe.teachers, ways):
        tm = load_model(t)
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
    for path, arr in ((views_cache, views), (cache, probs)):  # the probabilities last: they mark it complete
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
            out[i: i + batch, j] = np.clip(np.rint(_affine(x, recipe).numpy()[..., 0]), 0, 255).astype(np.uint8)
    tf.random.set_seed(recipe.seed)  # the seed a fresh run trains with (``train`` set it so)
    return out


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
    tta: str | None = None,
) -> Path:
    """Train on DATA's train split, choose on its validation split, write ``out`` + card, history, curves.

    ``tta`` overrides the recipe's (or the resumed run's) way of reading a face; a finished run resumed with
    another ``tta`` writes ``out`` again from that way's best epoch, without training.
    """
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
    recipe.tta = tta or recipe.tta
    recipe.teachers = [str(t) for t in recipe.teachers]
    recipe.init = str(recipe.init) if recipe.init else ""
    recipe.validate()

    t0 = time.time()
    train_set = load_split(data, "train", require_all=True)
    val_set = load_split(data, "validation")
    for s in (train_set, val_set):
        if s.skipped:
            log(f"skipped {len(s.skipped)} unreadable image(s) in {s.origin}, e.g. {s.skipped[0][0]}")
    import keras  # after the data checks: a bad path fails in a second, not after TensorFlow's start-up

    log(f"data: {len(train_set)} training and {len(val_set)} validation faces from {data} ({time.time() - t0:.0f} s)")

    keras.utils.set_random_seed(recipe.seed + (state.epoch if state is not None else 0))
    _register()
    keras.mixed_precision.set_global_policy(recipe.precision)
    try:
        state = _fit(data, out, recipe, state, train_set, val_set, log)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # the shipped file and everything after: float32
    return finalize(out, state, val_set, log)


def _fit(data, out: Path, recipe: Recipe, state: "TrainState | None", train_set: LabelledSet,
         val_set: LabelledSet, log=print) -> "TrainState":
    """Build or resume the model and run the epochs left, checkpointing each one; returns the state."""
    import keras

    ckpt = checkpoint_dir(out)
    state_path = ckpt / "state.json"
    kept = None  # a run stopped before its first epoch ended keeps its teachers' targets (~30 min on 2 cores)
    if state is not None and state.epoch == 0 and not (ckpt / "last.keras").exists():
        log("resuming before the first epoch ended: starting it again, keeping the teachers' cached targets")
        kept, state = state, None
    if state is not None and not (ckpt / "last.keras").exists():  # never start again silently over a run
        raise TrainingError(f"{ckpt / 'last.keras'}: missing, so the run in {ckpt} cannot resume "
                            f"(its state.json is there: move the folder away to start again)")
    if state is not None:
        if recipe.arch == "mirror":
            from .mirror import custom_layers

            custom_layers()  # keras must know its layers before it reads the checkpoint
        model = keras.saving.load_model(ckpt / "last.keras")
        compile_model(model, recipe, optimizer=model.optimizer)  # same optimizer state, current loss
        # a run that fits the read trains the read; the network inside it is what is chosen and shipped
        student = next((layer for layer in model.layers if isinstance(layer, keras.Model)), model)
        log(f"resuming from epoch {state.epoch} (best validation accuracy {state.best_val_accuracy:.4f})")
    else:
        state = TrainState(recipe=asdict(recipe), data=_data_name(data))
        if kept is not None:
            state.teachers, state.teacher_ensemble_accuracy = kept.teachers, kept.teacher_ensemble_accuracy
        student = build(recipe.arch)
        if recipe.init:
            student.set_weights(_init_weights(recipe, train_set.images, log))
        model = compile_model(read_model(student, recipe.tta) if recipe.fit_read else student, recipe)
    state.recipe = asdict(recipe)
    state.train_faces = len(train_set)
    if state.epoch >= recipe.epochs:  # nothing to fit: no teacher targets, no data pipeline
        log(f"already trained for {state.epoch} epochs")
        return state
    ckpt.mkdir(parents=True, exist_ok=True)
    teacher_probs = views = None
    if recipe.teachers:
        teacher_probs, views = teacher_targets(recipe, train_set, val_set, ckpt, state, log)
        atomic_write_text(state_path, json.dumps(asdict(state), indent=1))
    tr, va = _datasets(train_set, val_set, recipe, teacher_probs, views)
    steps = math.ceil(len(train_set) / recipe.batch_size)
    val_x = val_set.images.astype(np.float32)[..., None] / 255.0
    # Every epoch is read as the shipped file will be, in float32: a mixed_bfloat16 network's own reads
    # differ by ~0.2 points (kd7's epoch 13: 70.27% in bfloat16, 70.08% saved), enough to pick another epoch.
    # Ways of two passes or fewer are read every epoch (each has its best checkpoint); a dearer way only when
    # it is the card's: five turns would add ~10% to an epoch here.
    epoch_ways = [w for w in TTA_WAYS[1:] if tta_passes(w) <= 2 or w == recipe.tta]
    reader = None
    if recipe.precision != "float32":
        keras.mixed_precision.set_global_policy("float32")
        try:
            reader = build(recipe.arch)
        finally:
            keras.mixed_precision.set_global_policy(recipe.precision)

    average = None  # the running mean of the student's weights (Recipe.average_from), as numpy arrays
    if recipe.average_from and state.averaged:
        held = build(recipe.arch)
        held.load_weights(ckpt / "average.weights.h5")
        average = held.get_weights()
        if reader is None:
            reader = held

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
            # The checkpoint is chosen as it will be used: read each way (a few seconds per epoch each).
            # A mirror-symmetric network's flip read is its one pass, by construction.
            net = student
            if reader is not None:
                reader.set_weights(student.get_weights())
                net = reader
            # Keras's own validation pass read the faces one pass each, unless the run fits another read
            by_way = {"none": row["val_accuracy"] if reader is None and not recipe.fit_read else
                      tta_accuracy(net, val_x, val_set.labels, "none")}
            for way in epoch_ways:
                by_way[way] = by_way["none"] if way == "hflip" and recipe.arch == "mirror" else \
                    tta_accuracy(net, val_x, val_set.labels, way)
            row["val_accuracy_tta"] = by_way["hflip"]
            row["val_accuracy_rot5"] = by_way["rot5"]
            state.history.append(row)
            state.epoch = epoch + 1
            for way, acc in by_way.items():
                if acc > state.best_by_tta.get(way, [-1.0, 0])[0]:
                    state.best_by_tta[way] = [acc, epoch + 1]
                    with atomic_path(ckpt / f"best-{way}.weights.h5") as tmp:
                        student.save_weights(tmp)
            chosen_on = by_way[recipe.tta]
            if chosen_on > state.best_val_accuracy:
                state.best_val_accuracy, state.best_epoch, state.best_way = chosen_on, epoch + 1, recipe.tta
                state.best_averaged.pop("", None)
                with atomic_path(ckpt / "best.weights.h5") as tmp:
                    student.save_weights(tmp)
            for way in by_way:
                if state.best_by_tta[way][1] == epoch + 1:
                    state.best_averaged.pop(way, None)
            if recipe.average_from and epoch + 1 >= recipe.average_from:
                self._average(epoch, row)
            with atomic_path(ckpt / "last.keras") as tmp:  # after the average: a resume never counts an epoch twice
                self.model.save(tmp)
            atomic_write_text(state_path, json.dumps(asdict(state), indent=1))
            _write_history(state, out)

        def _average(self, epoch, row):
            """Fold this epoch into the running weight average, read it each way, keep it where it is best."""
            nonlocal average, reader
            weights = student.get_weights()
            state.averaged += 1
            average = weights if average is None else \
                [a + (w - a) / state.averaged for a, w in zip(average, weights)]
            if reader is None:
                reader = build(recipe.arch)
            reader.set_weights(average)
            with atomic_path(ckpt / "average.weights.h5") as tmp:
                reader.save_weights(tmp)
            first = epoch + 2 - state.averaged
            for way in ["none"] + epoch_ways:
                acc = tta_accuracy(reader, val_x, val_set.labels,  # a mirror network's flip: its one pass
                                   "none" if way == "hflip" and recipe.arch == "mirror" else way)
                row[f"avg_val_accuracy_{way}"] = acc
                if acc > state.best_by_tta.get(way, [-1.0, 0])[0]:
                    state.best_by_tta[way], state.best_averaged[way] = [acc, epoch + 1], first
                    with atomic_path(ckpt / f"best-{way}.weights.h5") as tmp:
                        reader.save_weights(tmp)
                if way == recipe.tta and acc > state.best_val_accuracy:
                    state.best_val_accuracy, state.best_epoch, state.best_way = acc, epoch + 1, recipe.tta
                    state.best_averaged[""] = first
                    with atomic_path(ckpt / "best.weights.h5") as tmp:
                        reader.save_weights(tmp)

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
    return state


def _init_weights(recipe: Recipe, train_faces: np.ndarray, log=print) -> list:
    """The --init model's own weights (not load_model's batch-norm-folded copy), checked to fit the recipe."""
    import keras

    from .model import load_model

    card = load_model(recipe.init).card  # the same checks as any model file gets
    if card.architecture != recipe.arch or list(card.classes) != list(CLASSES):
        raise TrainingError(f"{recipe.init}: architecture {card.architecture!r} with classes {card.classes}; "
                            f"the recipe trains {recipe.arch!r} with {list(CLASSES)}")
    log(f"starting from the weights of {Path(recipe.init).name} (validation accuracy {card.validation_accuracy})")
    if recipe.arch != "mirror":
        return keras.saving.load_model(recipe.init, compile=False).get_weights()
    # A mirror model ships as plain layers (kernels written out, batch norm folded), which do not train as a
    # mirror network again. Its run's checkpoint keeps the trainable weights of the epoch it shipped
    # (finalize's choice: the best epoch read the card's way, else its best epoch); without that folder, the
    # shipped file is unfolded, its batch-norm statistics measured on training faces.
    way = card.preprocessing.get("tta", "none")
    for weights in (checkpoint_dir(recipe.init) / f"best-{way}.weights.h5", checkpoint_dir(recipe.init) / "best.weights.h5"):
        if weights.exists():
            net = build("mirror")
            net.load_weights(weights)
            return net.get_weights()
    from .mirror import unfold
    from .model import preprocess

    pick = np.random.default_rng(recipe.seed).permutation(len(train_faces))[:UNFOLD_FACES]
    log(f"no {checkpoint_dir(recipe.init).name}/ beside it: unfolding the shipped layers "
        f"(batch-norm statistics from {len(pick)} training faces)")
    try:
        x = preprocess(train_faces[np.sort(pick)])
        return unfold(keras.saving.load_model(recipe.init, compile=False), x).get_weights()
    except ValueError as e:
        raise TrainingError(f"{recipe.init}: {e}") from None


#: Training faces whose statistics an unfolded mirror model's batch norm starts from (about 10 s on 2 cores).
UNFOLD_FACES = 4096


def _best_way(state: TrainState) -> str:
    """How best.weights.h5 was chosen; a run from before ``best_way`` was kept: the way whose best it equals."""
    if state.best_way:
        return state.best_way
    same = [w for w, (acc, ep) in state.best_by_tta.items() if ep == state.best_epoch and acc == state.best_val_accuracy]
    return same[0] if len(same) == 1 else "unknown"


def tta_accuracy(model, x: np.ndarray, labels: np.ndarray, way: str = "hflip") -> float:
    """Validation accuracy of a Keras model read with test-time augmentation ``way`` (``batchemo.tta``)."""
    if len(labels) == 0:
        return float("nan")
    p = sum(model.predict(v, batch_size=512, verbose=0) for v in tta_views(x, way))
    return float((p.argmax(1) == labels).mean())


def _data_name(data) -> str:
    """The data set's own name (``fer2013/``, ``fer2013.csv``), never the machine's path to it."""
    p = Path(data)
    return p.name + "/" if p.is_dir() else p.name


def finalize(out: Path, state: TrainState, val_set: LabelledSet, log=print) -> Path:
    """Write the best weights as ``out`` (no optimizer state: a few MB) with its measured model card."""
    from .evaluate import evaluate
    from .model import EmotionModel, count_macs

    ckpt = checkpoint_dir(out)
    recipe = Recipe(**state.recipe)
    model = build(recipe.arch)
    best, best_epoch, chosen_on = ckpt / "best.weights.h5", state.best_epoch, _best_way(state)
    averaged_from = state.best_averaged.get("")
    if recipe.tta in state.best_by_tta and (ckpt / f"best-{recipe.tta}.weights.h5").exists():
        best, best_epoch = ckpt / f"best-{recipe.tta}.weights.h5", state.best_by_tta[recipe.tta][1]
        chosen_on, averaged_from = recipe.tta, state.best_averaged.get(recipe.tta)
    model.load_weights(best)
    if recipe.arch == "mirror":  # ship the same function as plain standard layers
        from .mirror import plain_copy

        model = plain_copy(model)
    card = ModelCard(
        architecture=recipe.arch,
        training_data=_data_name(state.data) if os.sep in state.data.rstrip(os.sep) else state.data,
        training_faces=state.train_faces,
        validation_faces=len(val_set),
        recipe=state.recipe,
        epochs=best_epoch,
        parameters=int(model.count_params()),
        macs=count_macs(model),
        teachers=list(state.teachers),
        checkpoint_chosen_on=chosen_on,
        weights_averaged=[averaged_from, best_epoch] if averaged_from else [],
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    )
    card.recipe = {**state.recipe, "epochs_run": state.epoch}
    card.recipe["teachers"] = [Path(t).name for t in recipe.teachers]  # names only, not this machine's paths
    card.recipe["init"] = Path(recipe.init).name if recipe.init else ""
    if state.teacher_ensemble_accuracy is not None:
        card.recipe["teacher_ensemble_validation_accuracy"] = state.teacher_ensemble_accuracy
    card.preprocessing = {**card.preprocessing, "tta": recipe.tta}
    emotion = EmotionModel(model, card)
    results = {}
    for tta in TTA_WAYS:
        emotion.tta = tta
        results[tta] = evaluate(emotion, val_set)
    card.validation_accuracy_tta = {k: round(r.accuracy, 4) for k, r in results.items()}
    if len(val_set):  # flip TTA is the mean of the face's and the mirror image's: the mirror's, derived
        one = results["none"].probabilities
        mirror = 2.0 * results["hflip"].probabilities - one
        card.flip_agreement = round(float((one.argmax(1) == mirror.argmax(1)).mean()), 4)
    result = results[recipe.tta]
    card.validation_accuracy = round(result.accuracy, 4)
    card.per_class_f1 = {c: round(f, 4) for c, f in result.per_class_f1().items()}
    card.macro_f1 = round(result.macro_f1, 4)
    card.ece = round(expected_calibration_error(result.probabilities, result.labels), 4)
    with atomic_path(out) as tmp:
        model.save(tmp)
    card.save(out)
    _write_history(state, out) if state.history else None
    log(
        f"wrote {out}: best epoch {best_epoch} of {state.epoch}, "
        f"validation accuracy {result.accuracy:.4f} (TTA {recipe.tta}; "
        f"{card.validation_accuracy_tta['none']:.4f} one pass, {card.validation_accuracy_tta['hflip']:.4f} flip TTA, "
        f"{card.validation_accuracy_tta['rot5']:.4f} two turns, "
        f"flip agreement {card.flip_agreement}), macro F1 {result.macro_f1:.4f}, ECE {card.ece:.4f}"
    )
    return out
