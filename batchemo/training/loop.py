"""The training loop: start or resume a run, fit its epochs, keep its checkpoint, finish with the card.

A CPU run takes hours, so every epoch leaves a complete, resumable state in ``<out stem>.ckpt/``: the full
model with its optimizer (``last.keras``), the best weights read each way (``best-<way>.weights.h5``, and
``best.weights.h5`` for the card's way), the running weight average, and ``state.json`` (``TrainState``).
``train(..., resume=True)`` picks that up at the next epoch.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.files import atomic_path
from ..core.records import CLASSES
from ..emotions.tta import WAYS as TTA_WAYS
from ..emotions.tta import passes as tta_passes
from ..emotions.tta import views as tta_views
from ..sources.labelled import LabelledSet, load_split, with_votes
from .architectures import build
from .card import data_name, finalize, write_history
from .loss import compile_model, lr_at, register
from .pipeline import datasets, read_model
from .recipe import Recipe, TrainingError, checkpoint_dir
from .state import TrainState
from .teachers import teacher_targets

STATE_FILE = "state.json"


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
    state, recipe = _state_and_recipe(out, recipe, resume, tta)
    t0 = time.time()
    votes = recipe.votes or None
    train_set = load_split(data, "train", require_all=True, votes=votes)
    val_set = load_split(data, "validation", votes=votes)
    for s in (train_set, val_set):
        if s.skipped:
            log(f"skipped {len(s.skipped)} unreadable image(s) in {s.origin}, e.g. {s.skipped[0][0]}")
    import keras  # after the data checks: a bad path fails in a second, not after TensorFlow's start-up

    log(f"data: {len(train_set)} training and {len(val_set)} validation faces from {data} ({time.time() - t0:.0f} s)")
    keras.utils.set_random_seed(recipe.seed + (state.epoch if state is not None else 0))
    register()
    keras.mixed_precision.set_global_policy(recipe.precision)
    try:
        state = _fit(data, out, recipe, state, train_set, val_set, log)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # the shipped file and everything after: float32
    # every validation face someone gave an emotion: what calibration is fitted on and vote figures measure
    voted = with_votes(load_split(data, "validation"), votes, "votes") if votes else None
    return finalize(out, state, val_set, log, voted=voted)


def _state_and_recipe(out: Path, recipe: Recipe | None, resume: bool, tta: str | None):
    """(the resumed run's state or None, the recipe to run, checked). A resume takes the recipe in its state,
    with the caller's ``epochs`` when a recipe is given."""
    state_path = checkpoint_dir(out) / STATE_FILE
    state: TrainState | None = None
    if resume:
        if not state_path.exists():
            raise TrainingError(f"{state_path}: nothing to resume (no checkpoint of an earlier run)")
        state = TrainState.load(state_path)
        recipe = Recipe(**{**state.recipe, **({"epochs": recipe.epochs} if recipe else {})})
    recipe = recipe or Recipe()
    recipe.tta = tta or recipe.tta
    recipe.teachers = [str(t) for t in recipe.teachers]
    recipe.init = str(recipe.init) if recipe.init else ""
    recipe.votes = str(recipe.votes) if recipe.votes else ""
    recipe.validate()
    return state, recipe


def _fit(data, out: Path, recipe: Recipe, state: TrainState | None, train_set: LabelledSet,
         val_set: LabelledSet, log=print) -> TrainState:
    """Build or resume the model and run the epochs left, checkpointing each one; returns the state."""
    import keras

    ckpt = checkpoint_dir(out)
    state, model = _start_or_resume(data, out, recipe, state, train_set, log)
    state.recipe = asdict(recipe)
    state.train_faces = len(train_set)
    if state.epoch >= recipe.epochs:  # nothing to fit: no teacher targets, no data pipeline
        log(f"already trained for {state.epoch} epochs")
        return state
    ckpt.mkdir(parents=True, exist_ok=True)
    teacher_probs = views = None
    if recipe.teachers:
        teacher_probs, views = teacher_targets(recipe, train_set, val_set, ckpt, state, log)
        state.save(ckpt / STATE_FILE)
    tr, va = datasets(train_set, val_set, recipe, teacher_probs, views)
    reader, average = _reader_and_average(recipe, state, ckpt)
    checkpoint = Checkpoint(out, recipe, state, model, val_set, steps=math.ceil(len(train_set) / recipe.batch_size),
                            reader=reader, average=average)
    callbacks = [checkpoint.callback()]
    if recipe.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau("val_accuracy", factor=0.5, patience=5, min_lr=1e-6))
    model.fit(
        tr, validation_data=va, epochs=recipe.epochs, initial_epoch=state.epoch, callbacks=callbacks,
        shuffle=False,  # tf.data shuffles every epoch already
        verbose=1 if sys.stderr.isatty() else 2,
    )
    return state


def _start_or_resume(data, out: Path, recipe: Recipe, state: TrainState | None, train_set: LabelledSet, log=print):
    """(state, compiled model): the checkpoint's model and optimizer on a resume, else a fresh network (or
    the --init model's weights), read as the card reads a face when the run fits the read."""
    import keras

    ckpt = checkpoint_dir(out)
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
        log(f"resuming from epoch {state.epoch} (best validation accuracy {state.best_val_accuracy:.4f})")
        return state, model
    state = TrainState(recipe=asdict(recipe), data=data_name(data))
    if kept is not None:
        state.teachers, state.teacher_ensemble_accuracy = kept.teachers, kept.teacher_ensemble_accuracy
    student = build(recipe.arch)
    if recipe.init:
        student.set_weights(_init_weights(recipe, train_set.images, log))
    return state, compile_model(read_model(student, recipe.tta) if recipe.fit_read else student, recipe)


def _reader_and_average(recipe: Recipe, state: TrainState, ckpt: Path) -> tuple[Any, list | None]:
    """(reader, average). The reader is a float32 copy of the student that validation is read through when
    the student trains in mixed precision: the shipped file is float32, and a mixed_bfloat16 network's own
    reads differ by ~0.2 points (kd7's epoch 13: 70.27% in bfloat16, 70.08% saved), enough to pick another
    epoch. The average is the resumed run's running weight mean (numpy arrays), or None."""
    import keras

    reader = None
    if recipe.precision != "float32":
        keras.mixed_precision.set_global_policy("float32")
        try:
            reader = build(recipe.arch)
        finally:
            keras.mixed_precision.set_global_policy(recipe.precision)
    average = None
    if recipe.average_from and state.averaged:
        held = build(recipe.arch)
        held.load_weights(ckpt / "average.weights.h5")
        average = held.get_weights()
        if reader is None:
            reader = held
    return reader, average


def epoch_ways(recipe: Recipe) -> list[str]:
    """The ways (besides one pass) every epoch is read: those of two passes or fewer each keep their best
    checkpoint; a dearer way only when it is the card's (five turns would add ~10% to an epoch here)."""
    return [w for w in TTA_WAYS[1:] if tta_passes(w) <= 2 or w == recipe.tta]


@dataclass
class Checkpoint:
    """Each epoch's bookkeeping: the learning rate per batch, then at the epoch's end its reads each way, the
    best weights each way (and the card's), the running weight average, ``last.keras``, ``state.json``,
    history and curves. Holds the run's state explicitly; ``callback()`` hands its hooks to Keras's fit.
    """

    out: Path  # the model file the run writes; the checkpoint folder is beside it
    recipe: Recipe
    state: TrainState  # updated in place every epoch and saved as state.json
    model: Any  # what Keras fits: the student, or its read (Recipe.fit_read) holding it
    val_set: LabelledSet
    steps: int  # batches per epoch: the cosine schedule moves every batch
    reader: Any = None  # the float32 network validation is read through; None: the student itself
    average: list | None = None  # the running mean of the student's weights (Recipe.average_from), numpy
    ckpt: Path = field(init=False)
    student: Any = field(init=False)  # the network that is chosen and shipped
    val_x: np.ndarray = field(init=False)  # (N, 48, 48, 1) float32 validation faces in [0, 1]
    ways: list[str] = field(init=False)
    epoch: int = field(init=False, default=0)  # the epoch running, 0-based
    started: float = field(init=False, default=0.0)  # its start, time.time()

    def __post_init__(self):
        import keras

        self.ckpt = checkpoint_dir(self.out)
        self.student = next((layer for layer in self.model.layers if isinstance(layer, keras.Model)), self.model)
        self.val_x = self.val_set.images.astype(np.float32)[..., None] / 255.0
        self.ways = epoch_ways(self.recipe)

    def callback(self):
        """The hooks as a Keras callback, for ``model.fit``."""
        import keras

        return keras.callbacks.LambdaCallback(on_epoch_begin=self.epoch_begin, on_epoch_end=self.epoch_end,
                                              on_train_batch_begin=self.batch_begin)

    def batch_begin(self, batch: int, logs=None) -> None:
        if self.recipe.schedule == "cosine":
            self.model.optimizer.learning_rate.assign(lr_at(self.recipe, self.epoch, batch / self.steps))

    def epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch, self.started = epoch, time.time()

    def epoch_end(self, epoch: int, logs=None) -> None:
        """Read the epoch each way, keep what is best, fold the average, and save everything resumable."""
        row = {k: float(v) for k, v in (logs or {}).items()}
        row.update(epoch=epoch + 1, lr=float(self.model.optimizer.learning_rate), seconds=time.time() - self.started)
        net = self.student
        if self.reader is not None:
            self.reader.set_weights(self.student.get_weights())
            net = self.reader
        # Keras's own validation pass read the faces one pass each, unless the run fits another read
        keras_one_pass = row["val_accuracy"] if self.reader is None and not self.recipe.fit_read else None
        by_way = self.read_ways(net, keras_one_pass)
        row["val_accuracy_tta"] = by_way["hflip"]
        row["val_accuracy_rot5"] = by_way["rot5"]
        self.state.history.append(row)
        self.state.epoch = epoch + 1
        self.keep_best(by_way, epoch, self.student)
        if self.recipe.average_from and epoch + 1 >= self.recipe.average_from:
            self.fold_average(epoch, row)
        with atomic_path(self.ckpt / "last.keras") as tmp:  # after the average: a resume never counts an epoch twice
            self.model.save(tmp)
        self.state.save(self.ckpt / STATE_FILE)
        write_history(self.state, self.out)
        # early stopping counts from the best epoch in the state, so it survives a resume
        self.model.stop_training = epoch + 1 - self.state.best_epoch >= self.recipe.patience

    def read_ways(self, net, one_pass: float | None = None) -> dict[str, float]:
        """Validation accuracy of ``net`` read one pass and each of ``ways`` (``one_pass``: already known).
        A mirror-symmetric network's flip read is its one pass, by construction."""
        by_way = {"none": tta_accuracy(net, self.val_x, self.val_set.labels, "none") if one_pass is None else one_pass}
        for way in self.ways:
            by_way[way] = by_way["none"] if way == "hflip" and self.recipe.arch == "mirror" else \
                tta_accuracy(net, self.val_x, self.val_set.labels, way)
        return by_way

    def keep_best(self, by_way: dict[str, float], epoch: int, net, first: int | None = None) -> None:
        """Save ``net`` as best-<way> wherever it beats the best so far, and as best.weights.h5 on the card's
        way; ``first``: the first epoch of the weight average ``net`` holds (None: one epoch's weights)."""
        state, tta = self.state, self.recipe.tta
        keys = [(way, way, f"best-{way}.weights.h5") for way in by_way] + [("", tta, "best.weights.h5")]
        for key, way, name in keys:
            best = state.best_val_accuracy if key == "" else state.best_by_tta.get(way, [-1.0, 0])[0]
            if by_way[way] <= best:
                continue
            if key == "":
                state.best_val_accuracy, state.best_epoch, state.best_way = by_way[way], epoch + 1, way
            else:
                state.best_by_tta[way] = [by_way[way], epoch + 1]
            if first is None:
                state.best_averaged.pop(key, None)
            else:
                state.best_averaged[key] = first
            with atomic_path(self.ckpt / name) as tmp:
                net.save_weights(tmp)

    def fold_average(self, epoch: int, row: dict) -> None:
        """Fold this epoch into the running weight average, read it each way, keep it where it is best."""
        weights = self.student.get_weights()
        self.state.averaged += 1
        n = self.state.averaged
        self.average = weights if self.average is None else [a + (w - a) / n for a, w in zip(self.average, weights)]
        if self.reader is None:
            self.reader = build(self.recipe.arch)
        self.reader.set_weights(self.average)
        with atomic_path(self.ckpt / "average.weights.h5") as tmp:
            self.reader.save_weights(tmp)
        by_way = self.read_ways(self.reader)
        row.update({f"avg_val_accuracy_{way}": acc for way, acc in by_way.items()})
        self.keep_best(by_way, epoch, self.reader, first=epoch + 2 - n)


def tta_accuracy(model, x: np.ndarray, labels: np.ndarray, way: str = "hflip") -> float:
    """Validation accuracy of a Keras model read with test-time augmentation ``way`` (``batchemo.tta``)."""
    if len(labels) == 0:
        return float("nan")
    p = sum(model.predict(v, batch_size=512, verbose=0) for v in tta_views(x, way))
    return float((p.argmax(1) == labels).mean())


def _init_weights(recipe: Recipe, train_faces: np.ndarray, log=print) -> list:
    """The --init model's own weights (not load_model's batch-norm-folded copy), checked to fit the recipe."""
    import keras

    from ..emotions.model import load_keras

    card = load_keras(recipe.init).card  # the same checks as any model file gets
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
    for weights in (checkpoint_dir(recipe.init) / f"best-{way}.weights.h5",
                    checkpoint_dir(recipe.init) / "best.weights.h5"):
        if weights.exists():
            net = build("mirror")
            net.load_weights(weights)
            return net.get_weights()
    from ..emotions.model import preprocess
    from .mirror import unfold

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
