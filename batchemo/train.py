"""Compatibility: training moved to the ``batchemo.training`` package (see CHANGELOG.md).

``from batchemo.train import Recipe, train`` and the other names below keep working; new code imports
from ``batchemo.training`` (or its modules). Note that ``batchemo.train``, the attribute of the package,
is the ``train`` function, as it always was.
"""
from __future__ import annotations

import sys
import types

from .calibration import ECE_BINS, probabilities_ece
from .training.architectures import ARCHITECTURES, build, count_macs  # noqa: F401
from .training.card import best_way as _best_way  # noqa: F401
from .training.card import data_name as _data_name  # noqa: F401
from .training.card import finalize, plot_curves  # noqa: F401
from .training.card import write_history as _write_history  # noqa: F401
from .training.loop import UNFOLD_FACES, Checkpoint, train, tta_accuracy  # noqa: F401
from .training.loop import _init_weights, epoch_ways  # noqa: F401
from .training.loss import compile_model  # noqa: F401
from .training.loss import lr_at as _lr_at  # noqa: F401
from .training.loss import register as _register  # noqa: F401
from .training.pipeline import augment, mix_batch, read_model, read_views, targets  # noqa: F401
from .training.pipeline import datasets as _datasets  # noqa: F401
from .training.pipeline import random_affine as _affine  # noqa: F401
from .training.recipe import OPTIMIZERS, RECIPES, TEACHER_TTA, Recipe, TrainingError, checkpoint_dir  # noqa: F401
from .training.state import TrainState  # noqa: F401
from .training.teachers import teacher_targets, teacher_views, teacher_way  # noqa: F401


def expected_calibration_error(probs, labels, bins: int = ECE_BINS) -> float:
    """The old signature, (N, K) probabilities and (N,) labels: ``batchemo.calibration.probabilities_ece``."""
    return probabilities_ece(probs, labels, bins)


class _CallableModule(types.ModuleType):
    """A module that is also the ``train`` function: ``batchemo.train`` was the function before this module
    took its name, and importing a submodule sets the package attribute to the module."""

    def __call__(self, *args, **kwargs):
        from . import training

        return training.train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
