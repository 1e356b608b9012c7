"""The files of ``batchemo evaluate --out PREFIX``: per-face predictions, the classification report, the
confusion matrix as a table and as a picture. Reads an ``evaluate.Evaluation``; runs no model."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.files import atomic_path
from ..core.records import CLASSES
from ..outputs.tables import write_table


def plot_confusion(ev, path: str | os.PathLike, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = ev.confusion
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            ax.text(j, i, f"{cm[i, j]}\n{rates[i, j]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title or f"accuracy {ev.accuracy:.2%}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def save_evaluation(ev, out_prefix: str | os.PathLike) -> list[Path]:
    """``PREFIX.predictions.csv``, ``.report.csv``, ``.confusion.csv`` and ``.confusion.png``, written atomically."""
    import pandas as pd

    prefix = Path(out_prefix)
    rep = pd.DataFrame(ev.report()).T.reset_index(names="class")
    cm = pd.DataFrame(ev.confusion, index=list(CLASSES), columns=list(CLASSES)).reset_index(names="true\\predicted")
    return [
        write_table(ev.table(), prefix.with_name(prefix.name + ".predictions.csv")),
        write_table(rep, prefix.with_name(prefix.name + ".report.csv")),
        write_table(cm, prefix.with_name(prefix.name + ".confusion.csv")),
        plot_confusion(ev, prefix.with_name(prefix.name + ".confusion.png")),
    ]
