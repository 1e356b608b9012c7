"""The end of a run: the model file with its measured model card, and the history table and curves.

``finalize`` writes the weights the run kept (the best epoch read the card's way, or a weight average) as
plain Keras layers, measures them on the validation split every way ``batchemo.tta`` knows, and writes the
card: accuracy, per-class F1, macro F1, ECE (``batchemo.calibration``), multiply-adds, recipe, teachers.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from ..core.files import atomic_path
from ..emotions.calibration import probabilities_ece
from ..emotions.model import ModelCard
from ..emotions.tta import WAYS as TTA_WAYS
from ..sources.labelled import LabelledSet
from .architectures import build, count_macs
from .recipe import Recipe, checkpoint_dir
from .state import TrainState


def finalize(out: Path, state: TrainState, val_set: LabelledSet, log=print, voted: LabelledSet | None = None) -> Path:
    """Write the best weights as ``out`` (no optimizer state: a few MB) with its measured model card.
    ``voted``: validation faces with FER+ votes, on which the card's calibration is fitted and measured."""
    from ..emotions.model import EmotionModel

    recipe = Recipe(**state.recipe)
    weights, best_epoch, chosen_on, averaged_from = _kept_weights(state, recipe, checkpoint_dir(out))
    model = build(recipe.arch)
    model.load_weights(weights)
    if recipe.arch == "mirror":  # ship the same function as plain standard layers
        from .mirror import plain_copy

        model = plain_copy(model)
    card = _card(state, recipe, model, len(val_set), best_epoch)
    card.checkpoint_chosen_on = chosen_on
    card.weights_averaged = [averaged_from, best_epoch] if averaged_from else []
    emotion = EmotionModel(model, card)
    if voted is not None:
        calibrate(card, emotion, voted)
    _measure(card, emotion, val_set, recipe.tta)
    with atomic_path(out) as tmp:
        model.save(tmp)
    card.save(out)
    if state.history:
        write_history(state, out)
    acc = card.validation_accuracy_tta
    if card.ferplus:
        f = card.ferplus
        log(f"against FER+ votes: majority accuracy {f['majority_accuracy']:.4f}, vote cross-entropy "
            f"{f['cross_entropy']:.3f} nats (floor {f['floor']:.3f}), temperature {card.calibration['temperature']}, "
            f"worst band gap {f['worst_band_gap']:.3f}, FER2013 labels {f['fer2013_accuracy']:.4f}")
    log(
        f"wrote {out}: best epoch {best_epoch} of {state.epoch}, "
        f"validation accuracy {card.validation_accuracy:.4f} (TTA {recipe.tta}; "
        f"{acc['none']:.4f} one pass, {acc['hflip']:.4f} flip TTA, {acc['rot5']:.4f} two turns, "
        f"flip agreement {card.flip_agreement}), macro F1 {card.macro_f1:.4f}, ECE {card.ece:.4f}"
    )
    return out


def _kept_weights(state: TrainState, recipe: Recipe, ckpt: Path) -> tuple[Path, int, str, int | None]:
    """(weights file, its epoch, the way it was chosen by, first epoch of its weight average or None):
    the best epoch read the card's way when the run kept one, else ``best.weights.h5``."""
    if recipe.tta in state.best_by_tta and (ckpt / f"best-{recipe.tta}.weights.h5").exists():
        return (ckpt / f"best-{recipe.tta}.weights.h5", state.best_by_tta[recipe.tta][1], recipe.tta,
                state.best_averaged.get(recipe.tta))
    return ckpt / "best.weights.h5", state.best_epoch, best_way(state), state.best_averaged.get("")


def _card(state: TrainState, recipe: Recipe, model, validation_faces: int, best_epoch: int) -> ModelCard:
    """The card's facts about the run (its measurements come from ``_measure``); file names, not paths."""
    card = ModelCard(
        architecture=recipe.arch,
        training_data=data_name(state.data) if os.sep in state.data.rstrip(os.sep) else state.data,
        training_faces=state.train_faces,
        validation_faces=validation_faces,
        epochs=best_epoch,
        parameters=int(model.count_params()),
        macs=count_macs(model),
        teachers=list(state.teachers),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    )
    card.recipe = {**state.recipe, "epochs_run": state.epoch}
    card.recipe["teachers"] = [Path(t).name for t in recipe.teachers]  # names only, not this machine's paths
    card.recipe["init"] = Path(recipe.init).name if recipe.init else ""
    card.recipe["votes"] = Path(recipe.votes).name if recipe.votes else ""
    if recipe.votes:
        card.training_data += f" with FER+ votes ({Path(recipe.votes).name})"
    if state.teacher_ensemble_accuracy is not None:
        card.recipe["teacher_ensemble_validation_accuracy"] = state.teacher_ensemble_accuracy
    card.preprocessing = {**card.preprocessing, "tta": recipe.tta}
    return card


def _measure(card: ModelCard, emotion, val_set: LabelledSet, tta: str) -> None:
    """Fill the card's validation figures: accuracy every way, and with ``tta`` per-class F1, macro F1, ECE."""
    from ..emotions.evaluate import evaluate

    results = {}
    for way in TTA_WAYS:
        emotion.tta = way
        results[way] = evaluate(emotion, val_set)
    emotion.tta = tta
    card.validation_accuracy_tta = {k: round(r.accuracy, 4) for k, r in results.items()}
    if len(val_set):  # flip TTA is the mean of the face's and the mirror image's: the mirror's, derived
        one = results["none"].probabilities
        mirror = 2.0 * results["hflip"].probabilities - one
        card.flip_agreement = round(float((one.argmax(1) == mirror.argmax(1)).mean()), 4)
    result = results[tta]
    card.validation_accuracy = round(result.accuracy, 4)
    card.per_class_f1 = {c: round(f, 4) for c, f in result.per_class_f1().items()}
    card.macro_f1 = round(result.macro_f1, 4)
    card.ece = round(probabilities_ece(result.probabilities, result.labels), 4)


def calibrate(card: ModelCard, emotion, voted: LabelledSet) -> None:
    """Fit the card's temperature so that confidence means the share of people who agree (least vote
    cross-entropy on ``voted``), then record the figures against the votes; ``emotion`` reads with it."""
    from ..emotions.evaluate import evaluate
    from ..sources.votes import fit_temperature, vote_scores

    emotion.temperature = 1.0
    raw = evaluate(emotion, voted).probabilities
    t = fit_temperature(voted.votes, raw)
    card.calibration = {"temperature": t, "fitted_on": f"FER+ votes of {len(voted)} validation faces, "
                        f"least vote cross-entropy", "tta": emotion.tta}
    emotion.temperature = t
    ev = evaluate(emotion, voted)
    card.ferplus = {**vote_scores(voted.votes, ev.probabilities).as_dict(), "fer2013_accuracy": round(ev.accuracy, 4)}


def best_way(state: TrainState) -> str:
    """How best.weights.h5 was chosen; a run from before ``best_way`` was kept: the way whose best it equals."""
    if state.best_way:
        return state.best_way
    same = [w for w, (acc, ep) in state.best_by_tta.items()
            if ep == state.best_epoch and acc == state.best_val_accuracy]
    return same[0] if len(same) == 1 else "unknown"


def data_name(data) -> str:
    """The data set's own name (``fer2013/``, ``fer2013.csv``), never the machine's path to it."""
    p = Path(data)
    return p.name + "/" if p.is_dir() else p.name


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


def write_history(state: TrainState, out: Path) -> None:
    """``<out stem>.history.csv`` (one row per epoch) and ``<out stem>.curves.png`` beside the model."""
    import pandas as pd

    from ..core.files import atomic_write_text

    atomic_write_text(out.with_name(out.stem + ".history.csv"), pd.DataFrame(state.history).to_csv(index=False))
    plot_curves(state.history, out.with_name(out.stem + ".curves.png"))
