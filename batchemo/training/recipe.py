"""The recipe: every setting that decides how a model is trained, its named presets and their checks.

Saved in the checkpoint's ``state.json`` and in the model card, so a run can be resumed and reproduced.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..emotions.tta import WAYS as TTA_WAYS
from ..emotions.tta import passes as tta_passes


class TrainingError(Exception):
    """A training option or file that cannot work; the message names the option or the file."""


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
    # FER+ votes (batchemo.votes): a CSV of ten people's labels per face. The run learns each face's vote
    # distribution instead of its FER2013 label and is chosen on the FER+ majority of validation faces.
    votes: str = ""
    # Share of training faces made unreadable (darkened, blurred, reduced to 8x8 or the lower face covered)
    # with their targets flattened towards the uniform (pipeline.unreadable): doubt where a face cannot be read.
    unreadable: float = 0.0

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
        if not 0.0 <= self.unreadable <= 1.0:
            raise TrainingError(f"--unreadable is a share of faces from 0 to 1, not {self.unreadable}")
        if self.votes and not Path(self.votes).is_file():
            raise TrainingError(f"{self.votes}: --votes file not found")
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


def checkpoint_dir(out: str | os.PathLike) -> Path:
    """The folder of a run's resumable state, beside its model file: ``m.keras`` -> ``m.ckpt/``."""
    out = Path(out)
    return out.with_name(out.stem + ".ckpt")
