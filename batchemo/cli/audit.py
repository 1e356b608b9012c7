"""``batchemo audit``: where a model goes wrong on a labelled set, and why."""
from __future__ import annotations

import argparse

from .options import (
    ManualFormatter,
    add_jobs,
    add_lime,
    add_model,
    add_quiet,
    check_inputs,
    check_outputs,
    err,
    log,
    number,
    report_file,
    table_file,
)


def cmd_audit(a: argparse.Namespace) -> int:
    from ..outputs.tables import write_table
    from ..pipeline.audit import audit

    if not (a.report or a.csv):
        err("nothing to write: give --report and/or --csv")
        return 2
    check_inputs([a.data, *([a.votes] if a.votes else [])])
    check_outputs(a.report, a.csv, inputs=[a.data, a.model, a.votes])
    result = audit(
        a.data, model=a.model, split=a.split, max_explanations=a.max_explanations, sample=a.sample,
        seed=a.seed, lime_samples=a.lime_samples, jobs=a.jobs, log=log, progress=not a.quiet, votes=a.votes,
    )
    for source, why in result.skipped:
        log(f"skipped {source}: {why}")
    written = []
    if a.csv:
        written.append(write_table(result.table(), a.csv))
    if a.report:
        from ..report.audit import write_audit_report

        written.append(write_audit_report(result, a.report, a.csv))
    ece = f"{result.ece:.2%}" if result.ece == result.ece else "n/a"
    print(
        f"{len(result.evaluation.labels)} faces from {result.origin}: accuracy {result.accuracy:.2%}, "
        f"macro F1 {result.macro_f1:.3f}, ECE {ece}; {result.mistakes} mistakes, {len(result.explained)} explained"
        f"{f', {len(result.skipped)} unreadable files skipped' if result.skipped else ''}, "
        f"in {result.timings['total']:.1f} s -> {', '.join(map(str, written))}"
    )
    if result.votes is not None:
        v = result.verdict_counts()
        print(f"against the FER+ majority: accuracy {result.people_accuracy:.2%}; of the {result.mistakes} mistakes, "
              f"{v['disputed_label']} are disputed labels (most people chose the model's label), {v['model_error']} "
              f"model errors, {v['other']} both disputed, {v['no_majority']} without a clear majority")
    return 0


def add_parser(sub) -> None:
    from ..outputs.columns import AUDIT, help_text

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
        "Outputs are checked before any work and written atomically.",
        epilog=help_text(AUDIT, "columns of --csv (one row per labelled face):")
        + "\n\nexample: batchemo audit fer2013/validation --report audit.html --csv predictions.csv "
        "--max-explanations 50",
        formatter_class=ManualFormatter,
    )
    a.add_argument("data", metavar="DATA", help="labelled folder, or fer2013.csv")
    add_model(a)
    a.add_argument("--report", type=report_file, help="self-contained HTML report to write")
    a.add_argument("--csv", type=table_file, help="table to write, one row per face (columns below)")
    a.add_argument("--split", help="fer2013.csv rows to audit: PublicTest (default), PrivateTest or Training")
    a.add_argument("--votes", metavar="CSV", help="FER+ votes for DATA's faces (ferplus-votes.csv, or FER+'s "
                   "fer2013new.csv beside fer2013.csv): each mistake says whether most of the ten people chose the "
                   "data set's label or the model's, with the vote split, and accuracy is given against both")
    a.add_argument("--max-explanations", type=number(int, 0, 100_000), default=50, metavar="N",
                   help="mistakes to explain with LIME, spread over the confused pairs (default: %(default)s; "
                   "0 for none)")
    a.add_argument("--sample", type=number(int, 0, 100_000), default=24, metavar="N",
                   help="random faces to show with predicted vs true label (default: %(default)s)")
    add_lime(a)
    add_jobs(a, 2, "explanations (threads sharing one model)")
    add_quiet(a)
    a.set_defaults(func=cmd_audit)
