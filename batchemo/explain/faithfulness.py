"""How far a heatmap can be trusted, in words: weak, fair or strong.
"""
from __future__ import annotations

#: Faithfulness verdicts, from LIME's heatmaps of 100 FER2013 validation faces (median 0.33, quartiles
#: 0.27-0.38, deciles 0.21 ... 0.46): "weak" below the lowest decile (worse than nine in ten of them), "strong"
#: from the top fifth on, "fair" between. Measured: benchmarks/doubt_quality.py, docs/report.md.
FAITHFULNESS_WEAK = 0.2
FAITHFULNESS_STRONG = 0.4


def faithfulness_verdict(value) -> str:
    """"weak", "fair" or "strong" for a faithfulness score, "" when there is none (NaN / None)."""
    if value is None or value != value:
        return ""
    if value < FAITHFULNESS_WEAK:
        return "weak"
    return "strong" if value >= FAITHFULNESS_STRONG else "fair"
