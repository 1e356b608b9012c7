"""Training batchemo's CNN: everything that makes a model file, and nothing that reads one for analysis.

The analysis side (``batchemo.model``, ``engine``, ``audit`` ...) never imports this package; a model
file it loads is plain Keras layers with a card. One job per module:

* ``recipe``: ``Recipe`` (every setting of a run), its presets and checks, ``TrainingError``;
* ``architectures``: ``build(name)`` and ``count_macs``; ``mirror``: the mirror-symmetric network;
* ``pipeline``: augmentation, mixup/cutmix, targets and the tf.data datasets;
* ``teachers``: distillation's soft targets, computed once per run and cached;
* ``loss``: the distillation loss, its metric, the optimizer and the learning-rate schedule;
* ``state``: ``TrainState``, what ``state.json`` holds;
* ``loop``: ``train`` itself, start or resume, and the per-epoch ``Checkpoint``;
* ``card``: the model file, its measured model card, the history and curves.

TensorFlow and Keras are imported inside functions: importing this package is cheap.
"""
from __future__ import annotations

from .architectures import ARCHITECTURES, build, count_macs
from .card import finalize, plot_curves
from .loop import Checkpoint, train, tta_accuracy
from .recipe import OPTIMIZERS, RECIPES, TEACHER_TTA, Recipe, TrainingError, checkpoint_dir
from .state import TrainState

__all__ = [
    "ARCHITECTURES", "Checkpoint", "OPTIMIZERS", "RECIPES", "Recipe", "TEACHER_TTA", "TrainState", "TrainingError",
    "build", "checkpoint_dir", "count_macs", "finalize", "plot_curves", "train", "tta_accuracy",
]
