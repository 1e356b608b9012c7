"""What a run's ``state.json`` holds: enough to resume it at the next epoch and to write its card."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.files import atomic_write_text


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

    @classmethod
    def load(cls, path: Path) -> "TrainState":
        return cls(**json.loads(Path(path).read_text()))

    def save(self, path: Path) -> None:
        """Atomically: a run stopped while writing keeps the previous epoch's state."""
        atomic_write_text(path, json.dumps(asdict(self), indent=1))
