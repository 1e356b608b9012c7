"""The ``batchemo`` command line: a thin layer over the Python API.

Every expected failure (bad path, bad data, bad model) is one line on stderr and a non-zero exit,
never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _err(msg: str) -> None:
    print(f"batchemo: error: {msg}", file=sys.stderr)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def at_least(least: float, kind=int):
    """An argparse type: a number >= ``least`` (a bad value is a usage error, not a traceback)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not value >= least:
            raise argparse.ArgumentTypeError(f"{text} is less than {least}")
        return value

    return parse


# ---------------------------------------------------------------- train / evaluate
def cmd_train(a: argparse.Namespace) -> int:
    from .train import Recipe, train

    recipe = None
    if not a.resume or a.epochs is not None:
        recipe = Recipe.named(a.recipe or ("distill" if a.teacher else {"wide": "teacher", None: "default"}.get(a.arch, a.arch)))
        recipe.arch = a.arch or recipe.arch
        for key in ("epochs", "batch_size", "lr", "schedule", "patience", "seed", "optimizer", "momentum",
                    "label_smoothing", "mixup", "cutmix", "mix_prob", "erase", "distill_alpha",
                    "distill_temperature"):
            value = getattr(a, key)
            if value is not None:
                setattr(recipe, key, value)
        if a.no_augment:
            recipe.rotation = recipe.shear = recipe.zoom = recipe.shift = 0.0
            recipe.hflip = False
        if a.teacher:
            recipe.teachers = list(a.teacher)
    train(a.data, a.out, recipe=recipe, resume=a.resume, log=_log)
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .datasets import load_split
    from .evaluate import evaluate, save_evaluation
    from .model import load_model

    model = load_model(a.model)
    if a.no_tta:
        model.tta = False
    data = load_split(a.data, "validation", split=a.split)
    for src, why in data.skipped:
        _log(f"skipped {src}: {why}")
    ev = evaluate(model, data)
    print(f"model: {model.path}  data: {data.origin}  faces: {len(data)}  tta: {'hflip' if model.tta else 'none'}")
    print(f"accuracy: {ev.accuracy:.4f}   macro F1: {ev.macro_f1:.4f}\n")
    print(ev.report_text())
    import pandas as pd

    from .model import CLASSES

    print(pd.DataFrame(ev.confusion, index=list(CLASSES), columns=list(CLASSES)).to_string())
    if a.out:
        for p in save_evaluation(ev, a.out):
            print(f"wrote {p}")
    return 0


# ---------------------------------------------------------------- run
def cmd_run(a: argparse.Namespace) -> int:
    from .engine import analyze, summary, table
    from .outputs import write_table

    if not (a.report or a.csv or a.json):
        _err("nothing to write: give --report, --csv and/or --json")
        return 2
    options = {}
    if a.detector == "haar":
        options = {"scale_factor": a.scale_factor, "min_neighbors": a.min_neighbors}
    df = analyze(
        a.paths, model=a.model, detector=a.detector, explain=a.explain, lime_samples=a.lime_samples,
        jobs=a.jobs, backend=a.backend, scheduler=a.scheduler, progress=not a.quiet, seed=a.seed,
        cache=a.cache, **options,
    )
    written = []
    videos, video_run = _videos_in(a.paths), None
    if videos:  # timelines beside the main outputs, linked from the report
        from .video import run_videos

        first_out = Path(a.report or a.csv or a.json)
        video_run = run_videos(
            videos, prefix=first_out.with_suffix(""), model=a.model, detector=a.detector,
            explain_keyframes=1 if a.explain else 0, lime_samples=a.lime_samples, seed=a.seed,
            report=bool(a.report), progress=not a.quiet, log=_log,
        )
        written += [p for p in (video_run.csv, video_run.report) if p]
    if a.csv:
        written.append(write_table(table(df), a.csv))
    if a.json:
        written.append(write_table(table(df), a.json))
    if a.report:
        from .report import write_run_report

        written.append(write_run_report(df, a.report, video_run))
    s = summary(df)
    print(
        f"{s['images']} images: {s['images_with_faces']} with faces, {s['faces']} faces, "
        f"{s['images_without_faces']} without a face, {s['failed']} failed"
        + (f"; {len(videos)} videos ({video_run.failed} failed)" if videos else "")
        + f", in {s['seconds']:.1f} s"
        + (f" -> {', '.join(map(str, written))}" if written else "")
    )
    if s["failed"]:
        for _, r in df[df["status"] == "failed"].iterrows():
            _log(f"failed: {r['path']}: {r['reason']}")
    if s["images"] + len(videos) == 0:
        _err("no images or videos found in " + ", ".join(a.paths))
        return 1
    processed = s["images"] - s["failed"] + (len(videos) - video_run.failed if video_run else 0)
    return 0 if processed > 0 else 1


def _videos_in(paths: list[str]) -> list[Path]:
    from .sources import find_media, is_video

    return [p for p in find_media(paths, videos=True) if is_video(p)]


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="batchemo",
        description="Faces, emotions and LIME explanations for whole collections of photos and videos.",
    )
    p.add_argument("--version", action="version", version=f"batchemo {__import__('batchemo').__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser(
        "run", help="faces, emotions and LIME heatmaps for photos, in one shareable HTML report",
        description="Find every face in the images under PATH (folders are walked recursively), classify its "
        "emotion with the CNN, explain the prediction with LIME, and write an HTML report and/or CSV/JSON "
        "(one row per face; images without faces and files that failed are listed too). "
        "Exit status 0 unless nothing could be processed.",
    )
    r.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    r.add_argument("--report", help="self-contained HTML report to write")
    r.add_argument("--csv", help="CSV to write, one row per face")
    r.add_argument("--json", help="JSON to write, one record per face")
    r.add_argument("--detector", choices=["haar", "hog", "cnn"], default="haar",
                   help="face detector: haar (OpenCV, default), hog or cnn (dlib, needs batchemo[dlib])")
    r.add_argument("--scale-factor", type=at_least(1.01, float), default=1.3, help="Haar scaleFactor (default: %(default)s)")
    r.add_argument("--min-neighbors", type=at_least(0), default=5, help="Haar minNeighbors (default: %(default)s)")
    r.add_argument("--explain", action=argparse.BooleanOptionalAction, default=True,
                   help="LIME heatmap for every face (default: on)")
    r.add_argument("--lime-samples", type=at_least(10), default=1000, help="LIME perturbations per face (default: %(default)s)")
    r.add_argument("--jobs", "-j", type=at_least(1), default=1, help="worker processes (default: %(default)s)")
    r.add_argument("--backend", choices=["loky", "dask"], default="loky", help="joblib backend (default: %(default)s)")
    r.add_argument("--scheduler", help="Dask scheduler address for --backend dask (default: a local cluster)")
    r.add_argument("--model", help="model file (.keras); default: the shipped model")
    r.add_argument("--seed", type=int, default=0, help="LIME random seed (default: %(default)s)")
    r.add_argument("--cache", metavar="DIR",
                   help="keep each image's results in DIR and reuse them when files, model and settings are "
                   "unchanged: a stopped run resumes where it stopped")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser(
        "train", help="train the emotion CNN on FER2013 (folder layout or fer2013.csv)",
        description="Train on DATA's training split and keep the epoch with the best validation accuracy. "
        "DATA is a folder with train/<class>/ and validation/<class>/ (or test/), or a Kaggle fer2013.csv "
        "(Training rows train, PublicTest rows validate). Every epoch is checkpointed to OUT's .ckpt/ folder; "
        "--resume continues a stopped run.",
    )
    t.add_argument("data", help="dataset folder or fer2013.csv")
    t.add_argument("--out", required=True, help="model file to write (.keras); history, curves and card go beside it")
    t.add_argument("--arch", choices=["default", "seed", "wide"], help="architecture (default: the recipe's, else default)")
    t.add_argument("--recipe", choices=["default", "seed", "teacher", "distill"],
                   help="training recipe (default: the one named like --arch; distill when --teacher is given)")
    t.add_argument("--epochs", type=at_least(1), help="number of epochs (default recipe 80, seed recipe 50)")
    t.add_argument("--batch-size", type=at_least(1), help="batch size (default recipe 64, seed recipe 512)")
    t.add_argument("--lr", type=float, help="Adam learning rate (default recipe 2e-3, seed recipe 1e-4)")
    t.add_argument("--schedule", choices=["cosine", "plateau"], help="learning-rate schedule")
    t.add_argument("--patience", type=int, help="early stopping: epochs without a better validation accuracy")
    t.add_argument("--seed", type=int, help="random seed")
    t.add_argument("--no-augment", action="store_true", help="train without augmentation")
    t.add_argument("--optimizer", choices=["adam", "sgd-nesterov"], help="optimizer (default recipe: adam)")
    t.add_argument("--momentum", type=float, help="sgd-nesterov momentum (default 0.9)")
    t.add_argument("--label-smoothing", type=float, help="label smoothing of the hard labels (default 0)")
    t.add_argument("--mixup", type=float, help="mixup Beta alpha, 0 = off (teacher recipe 0.2)")
    t.add_argument("--cutmix", type=float, help="cutmix Beta alpha, 0 = off (both on: half the batches each)")
    t.add_argument("--mix-prob", type=float, help="probability that a batch is mixed (default 1)")
    t.add_argument("--erase", type=float, help="random-erasing probability (default 0)")
    t.add_argument("--teacher", nargs="+", metavar="MODEL", help="distil from these .keras models (mean flip-TTA "
                   "probabilities, computed once per run)")
    t.add_argument("--distill-alpha", type=float, help="weight of the teachers' term (default 0.9)")
    t.add_argument("--distill-temperature", type=float, help="distillation temperature (default 3)")
    t.add_argument("--resume", action="store_true", help="continue the run checkpointed beside --out")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate", help="accuracy, confusion matrix and classification report on a labelled set",
        description="Score a model on a labelled folder (<class>/ folders, or a folder holding validation/) "
        "or on a split of fer2013.csv.",
    )
    e.add_argument("data", help="labelled folder or fer2013.csv")
    e.add_argument("--model", help="model file (.keras); default: the shipped model")
    e.add_argument("--split", help="fer2013.csv split: PublicTest (default), PrivateTest or Training")
    e.add_argument("--out", help="prefix for PREFIX.predictions.csv, .report.csv, .confusion.csv/.png")
    e.add_argument("--no-tta", action="store_true", help="no horizontal-flip test-time augmentation")
    e.set_defaults(func=cmd_evaluate)
    from .cli_audit import add_parser as _add_audit; _add_audit(sub)
    from .cli_video import add_parser as _add_video; _add_video(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from .datasets import DatasetError
    from .model import ModelError

    from .detect import DetectorUnavailable
    from .train import TrainingError

    args = build_parser().parse_args(argv)
    known = (DatasetError, ModelError, OSError, ValueError, DetectorUnavailable, TrainingError)
    try:
        return args.func(args)
    except known as e:
        _err(str(e))
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
