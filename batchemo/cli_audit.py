"""``batchemo audit``: the command line over ``batchemo.audit`` (registered by ``cli.build_parser``).

Kept out of cli.py so the subcommand, its manual-like help and its output live in one place.
"""
from __future__ import annotations

import argparse

from .cli import at_least


def add_parser(sub) -> argparse.ArgumentParser:
    a = sub.add_parser(
        "audit", help="where the model goes wrong on a labelled set, and why: metrics, mistakes, LIME, calibration",
        description="Score a model on a labelled set and write one self-contained HTML report: accuracy, macro F1, "
        "scikit-learn's per-class precision/recall/F1, the confusion matrix (counts and row-normalised rates), a "
        "gallery of the most confident mistakes for each (true, predicted) pair with LIME heatmaps for the predicted "
        "and for the true class side by side, a seeded random sample of faces with predicted vs true label, and a "
        "reliability diagram with the expected calibration error. --csv writes one row per face. DATA is a folder "
        "of <class>/ folders (angry, disgust, fear, happy, neutral or natural, sad, surprise), a folder holding "
        "validation/, or a Kaggle fer2013.csv (--split picks the rows). Unreadable images are listed and skipped; "
        "unknown class folders, empty classes and a model whose classes differ from the data's are errors. "
        "Outputs are written atomically.",
        epilog="example: batchemo audit fer2013/validation --report audit.html --csv predictions.csv "
        "--max-explanations 50",
    )
    a.add_argument("data", metavar="DATA", help="labelled folder, or fer2013.csv")
    a.add_argument("--model", help="model file (.keras); default: the shipped model")
    a.add_argument("--report", help="self-contained HTML report to write")
    a.add_argument("--csv", help="CSV to write: path, true_label, predicted_label, confidence, p_<class> x7, correct")
    a.add_argument("--split", help="fer2013.csv rows to audit: PublicTest (default), PrivateTest or Training")
    a.add_argument("--max-explanations", type=at_least(0), default=50, metavar="N",
                   help="mistakes to explain with LIME, spread over the confused pairs (default: %(default)s; "
                   "0 for none)")
    a.add_argument("--sample", type=at_least(0), default=24, metavar="N",
                   help="random faces to show with predicted vs true label (default: %(default)s)")
    a.add_argument("--lime-samples", type=at_least(10), default=1000, metavar="N",
                   help="LIME perturbations per explained face (default: %(default)s)")
    a.add_argument("--seed", type=int, default=0, help="seed of the random sample and of LIME (default: %(default)s)")
    a.add_argument("--jobs", "-j", type=at_least(1), default=2, metavar="N",
                   help="threads explaining mistakes in parallel (default: %(default)s)")
    a.set_defaults(func=cmd_audit)
    return a


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import audit, write_audit_csv
    from .cli import _err, _log

    if not (args.report or args.csv):
        _err("nothing to write: give --report and/or --csv")
        return 2
    result = audit(
        args.data, model=args.model, split=args.split, max_explanations=args.max_explanations,
        sample=args.sample, seed=args.seed, lime_samples=args.lime_samples, n_jobs=args.jobs, log=_log,
    )
    for source, why in result.skipped:
        _log(f"skipped {source}: {why}")
    written = []
    if args.csv:
        written.append(write_audit_csv(result, args.csv))
    if args.report:
        from .audit_report import write_audit_report

        written.append(write_audit_report(result, args.report))
    ece = f"{result.ece:.2%}" if result.ece == result.ece else "n/a"
    print(
        f"{len(result.evaluation.labels)} faces from {result.origin}: accuracy {result.accuracy:.2%}, "
        f"macro F1 {result.macro_f1:.3f}, ECE {ece}; {result.mistakes} mistakes, {len(result.explained)} explained"
        f"{f', {len(result.skipped)} unreadable files skipped' if result.skipped else ''}, "
        f"in {result.timings['total']:.1f} s -> {', '.join(map(str, written))}"
    )
    return 0
