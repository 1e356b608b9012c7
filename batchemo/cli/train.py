"""``batchemo train`` and ``batchemo evaluate``: the model's own commands."""
from __future__ import annotations

import argparse

from ..emotions.tta import WAYS as TTA_WAYS
from ..training.recipe import TEACHER_TTA, TrainingError  # noqa: F401 (light: keras loads when a model is built)
from .options import MAX_SEED, add_model, check_inputs, check_outputs, log, number, output_file


def cmd_train(a: argparse.Namespace) -> int:
    from ..core.runtime import require_tensorflow

    require_tensorflow("training")
    from ..training import Recipe, train

    check_inputs([a.data, *([a.votes] if a.votes else [])])
    check_outputs(a.out, inputs=[a.data, a.init, a.votes, *(a.teacher or [])])
    recipe = None
    if not a.resume or a.epochs is not None:
        recipe = Recipe.named(a.recipe or ("distill" if a.teacher
                                           else {"wide": "teacher", None: "default"}.get(a.arch, a.arch)))
        recipe.arch = a.arch or recipe.arch
        # a mirror network's one pass is its flip average: its second pass goes to two turns instead
        recipe.tta = "rot5" if recipe.arch == "mirror" else "hflip"
        for key in ("epochs", "batch_size", "lr", "schedule", "patience", "seed", "optimizer", "momentum",
                    "label_smoothing", "mixup", "cutmix", "mix_prob", "erase", "distill_alpha",
                    "distill_temperature", "teacher_views", "teacher_tta", "tta", "precision", "average_from",
                    "unreadable"):
            value = getattr(a, key)
            if value is not None:
                setattr(recipe, key, value)
        if a.no_augment:
            recipe.rotation = recipe.shear = recipe.zoom = recipe.shift = 0.0
            recipe.hflip = False
        if a.teacher:
            recipe.teachers = list(a.teacher)
        if a.init:
            recipe.init = a.init
        recipe.fit_read = a.fit_read
        recipe.votes = a.votes or ""
    train(a.data, a.out, recipe=recipe, resume=a.resume, log=log, tta=a.tta)
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    import pandas as pd

    from ..core.records import CLASSES
    from ..emotions.evaluate import evaluate
    from ..emotions.model import load_model
    from ..report.evaluation import save_evaluation
    from ..sources.labelled import load_split
    check_inputs([a.data, *([a.votes] if a.votes else [])])
    if a.out:
        check_outputs(*(a.out + s for s in (".predictions.csv", ".report.csv", ".confusion.csv", ".confusion.png")),
                      inputs=[a.data, a.model, a.votes])
    data = load_split(a.data, "validation", split=a.split)
    if a.votes:
        from ..sources.labelled import with_votes

        data = with_votes(data, a.votes, "votes")
    model = load_model(a.model)
    if a.no_tta:
        model.tta = "none"
    for src, why in data.skipped:
        log(f"skipped {src}: {why}")
    ev = evaluate(model, data)
    print(f"model: {model.path}  data: {data.origin}  faces: {len(data)}  tta: {model.tta}")
    print(f"accuracy: {ev.accuracy:.4f}   macro F1: {ev.macro_f1:.4f}\n")
    print(ev.report_text())
    print(pd.DataFrame(ev.confusion, index=list(CLASSES), columns=list(CLASSES)).to_string())
    if a.votes:
        print("\n" + vote_summary(data.votes, ev.probabilities))
    if a.out:
        for p in save_evaluation(ev, a.out):
            print(f"wrote {p}")
    return 0


def vote_summary(votes, probabilities) -> str:
    """What ``evaluate --votes`` prints: the model against FER+'s ten people per face."""
    from ..sources.votes import BAND_MIN_FACES, vote_scores

    s = vote_scores(votes, probabilities)
    lines = [f"against FER+ votes ({s.faces} faces with emotion votes): majority accuracy {s.majority_accuracy:.4f} "
             f"({s.majority_faces} faces with a clear majority), {s.strong_accuracy:.4f} where 6 or more of 10 agree "
             f"({s.strong_faces}); vote cross-entropy {s.cross_entropy:.3f} nats "
             f"(the votes' own entropy: {s.floor:.3f})",
             "confidence band   faces  mean confidence  people who chose the label"]
    lines += [f"{b.lower:.1f}-{b.upper:.1f}        {b.count:6d}  {b.confidence:15.3f}  {b.agreement:.3f}"
              + ("" if b.count >= BAND_MIN_FACES else "  (few faces)") for b in s.bands if b.count]
    return "\n".join(lines)


def add_parsers(sub) -> None:
    t = sub.add_parser(
        "train", help="train the emotion CNN on FER2013 (folder layout or fer2013.csv)",
        description="Train on DATA's training split and keep the epoch with the best validation accuracy. "
        "DATA is a folder with train/<class>/ and validation/<class>/ (or test/), or a Kaggle fer2013.csv "
        "(Training rows train, PublicTest rows validate). Every epoch is checkpointed to OUT's .ckpt/ folder; "
        "--resume continues a stopped run.",
    )
    t.add_argument("data", help="dataset folder or fer2013.csv")
    t.add_argument("--out", required=True, type=output_file((".keras",), "the model"),
                   help="model file to write (.keras); history, curves and card go beside it")
    t.add_argument("--arch", choices=["default", "seed", "wide", "mirror"],
                   help="architecture (default: the recipe's, else default)")
    t.add_argument("--recipe", choices=["default", "seed", "teacher", "distill", "mirror"],
                   help="training recipe (default: the one named like --arch; distill when --teacher is given)")
    t.add_argument("--epochs", type=number(int, 1, 10_000), help="number of epochs (default recipe 80, seed recipe 50)")
    t.add_argument("--batch-size", type=number(int, 1, 65_536), help="batch size (default recipe 64, seed recipe 512)")
    t.add_argument("--lr", type=number(float, 0, 10, above=True),
                   help="Adam learning rate (default recipe 2e-3, seed recipe 1e-4)")
    t.add_argument("--schedule", choices=["cosine", "plateau"], help="learning-rate schedule")
    _add_regularisation(t)
    _add_distillation(t)
    _add_reading(t)
    t.set_defaults(func=cmd_train)
    _add_evaluate(sub)


def _add_regularisation(t) -> None:
    t.add_argument("--patience", type=number(int, 0, 10_000),
                   help="early stopping: epochs without a better validation accuracy")
    t.add_argument("--seed", type=number(int, 0, MAX_SEED), help="random seed")
    t.add_argument("--no-augment", action="store_true", help="train without augmentation")
    t.add_argument("--optimizer", choices=["adam", "sgd-nesterov"], help="optimizer (default recipe: adam)")
    t.add_argument("--momentum", type=number(float, 0, 0.999), help="sgd-nesterov momentum (default 0.9)")
    t.add_argument("--label-smoothing", type=number(float, 0, 0.99),
                   help="label smoothing of the hard labels (default 0)")
    t.add_argument("--mixup", type=number(float, 0, 100), help="mixup Beta alpha, 0 = off (teacher recipe 0.2)")
    t.add_argument("--cutmix", type=number(float, 0, 100),
                   help="cutmix Beta alpha, 0 = off (both on: half the batches each)")
    t.add_argument("--mix-prob", type=number(float, 0, 1), help="probability that a batch is mixed (default 1)")
    t.add_argument("--erase", type=number(float, 0, 1), help="random-erasing probability (default 0)")



def _add_distillation(t) -> None:
    t.add_argument("--teacher", nargs="+", metavar="MODEL", help="distil from these .keras models (mean flip-TTA "
                   "probabilities, computed once per run)")
    t.add_argument("--distill-alpha", type=number(float, 0, 1), help="weight of the teachers' term (default 0.9)")
    t.add_argument("--distill-temperature", type=number(float, 0, 100, above=True),
                   help="distillation temperature (default 3)")
    t.add_argument("--teacher-views", type=number(int, 0, 1000), metavar="K",
                   help="consistent teaching: the teachers judge K augmented views of each face (cached) and "
                        "each epoch the student learns from one of them (default 0: the faces as they are)")
    t.add_argument("--teacher-tta", choices=list(TEACHER_TTA), help="how teachers read a face: hflip (the mean "
                   "with the mirror image; default), auto (a mirror-symmetric teacher the mean of two 5-degree "
                   "turns, any other the flip) or turns (a mirror-symmetric teacher the mean of five turns, 0, 5 "
                   "and 10 degrees each way: 2.5x the passes of auto)")



def _add_reading(t) -> None:
    t.add_argument("--tta", choices=list(TTA_WAYS), help="test-time augmentation the model card asks for: hflip "
                   "(the mean with the mirror image, 2 passes per face; default), rot5 (the mean of the face turned "
                   "5 degrees each way, 2 passes; default for --arch mirror), turns (five turns, 5 passes) or none "
                   "(1 pass)")
    t.add_argument("--precision", choices=["float32", "mixed_bfloat16"], help="training arithmetic: mixed_bfloat16 "
                   "is faster on CPUs with AVX512_BF16 (here 66 vs 90 s per epoch); the saved model is float32 "
                   "either way")
    t.add_argument("--init", metavar="MODEL", help="start from this trained model's weights (same architecture) "
                   "instead of a random initialisation")
    t.add_argument("--fit-read", action="store_true", help="the loss sees the card's read of each face (the mean "
                   "over its --tta views), not one pass: the network is fit to the read it ships with, at one pass "
                   "of work per view each step")
    t.add_argument("--average-from", type=number(int, 1, 10_000), metavar="EPOCH",
                   help="weight averaging: from this epoch on, "
                   "the mean of every epoch's weights is read too and kept where it reads best (default: off)")
    t.add_argument("--votes", metavar="CSV", help="FER+ votes for DATA's faces (ferplus-votes.csv, or FER+'s "
                   "fer2013new.csv beside fer2013.csv): learn what ten people saw in each face, not FER2013's one "
                   "label, and choose the epoch on the FER+ majority of validation faces")
    t.add_argument("--unreadable", type=number(float, 0, 1), metavar="SHARE", help="share of training faces made "
                   "unreadable (darkened, blurred, reduced to 8x8 pixels or the lower face covered) and taught a "
                   "flattened target, so that such faces get doubtful answers (default 0)")
    t.add_argument("--resume", action="store_true", help="continue the run checkpointed beside --out")


def _add_evaluate(sub) -> None:
    e = sub.add_parser(
        "evaluate", help="accuracy, confusion matrix and classification report on a labelled set",
        description="Score a model on a labelled folder (<class>/ folders, or a folder holding validation/) "
        "or on a split of fer2013.csv.",
    )
    e.add_argument("data", help="labelled folder or fer2013.csv")
    add_model(e)
    e.add_argument("--split", help="fer2013.csv split: PublicTest (default), PrivateTest or Training")
    e.add_argument("--out", help="prefix for PREFIX.predictions.csv, .report.csv, .confusion.csv/.png")
    e.add_argument("--no-tta", action="store_true", help="one pass per face, without the card's test-time augmentation")
    e.add_argument("--votes", metavar="CSV", help="FER+ votes for DATA's faces: also print majority accuracy, vote "
                   "cross-entropy and confidence against the share of people who agree")
    e.set_defaults(func=cmd_evaluate)
