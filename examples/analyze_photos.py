"""The Python API, as a notebook would use it: one DataFrame row per face, then your own analysis.

    python examples/analyze_photos.py [FOLDER]
"""
import sys
from pathlib import Path

import batchemo
from batchemo import run
from batchemo.report.run import write_run_report

folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "photos"
df = batchemo.analyze(folder, explain=True, lime_samples=500)
faces = df[df["status"] == "ok"]
print(faces[["path", "face_index", "label", "confidence"]].to_string(index=False))
print("\nmean probability per emotion:")
print(faces[[f"p_{c}" for c in batchemo.CLASSES]].mean().round(3).to_string())

# The report needs the images too: run() keeps a bounded gallery of them beside the statistics.
result = run(folder, lime_samples=500, progress=False)
out = write_run_report(result, Path("out") / "api-report.html")
print(f"\nreport: {out}")
