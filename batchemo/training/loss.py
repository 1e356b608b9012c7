"""The loss (cross-entropy with distillation), its accuracy metric, the optimizer and the learning rate.

``register`` defines the loss and metric on first use and registers them with Keras, so that a
checkpoint's ``last.keras`` reloads; importing this module does not import Keras.
"""
from __future__ import annotations

import math

from ..core.records import CLASSES
from .recipe import Recipe


def register():
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

    DistillLoss, target_accuracy = register()
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


def lr_at(recipe: Recipe, epoch: int, step_frac: float = 0.0) -> float:
    """The learning rate at ``epoch`` (0-based) plus ``step_frac`` of it: constant, or one warm-up epoch then
    a cosine decay to 0 at the last epoch."""
    if recipe.schedule != "cosine":
        return recipe.lr
    t = epoch + step_frac
    if t < 1.0:  # one warm-up epoch
        return recipe.lr * max(t, 0.05)
    progress = min((t - 1.0) / max(recipe.epochs - 1.0, 1.0), 1.0)
    return recipe.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
