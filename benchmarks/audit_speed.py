"""Wall time of ``batchemo audit`` on FER2013's 3,589-face validation split, without and with explanations.

    python benchmarks/audit_speed.py [--model M.keras] [--data FOLDER] [--explanations 50] [--jobs 2]

Unpacks the validation split of ../shared/datasets/fer2013.tar.gz into a temp folder (unless --data names an
unpacked one), loads the model once, then times two full audits (data loading, prediction, LIME, report and
CSV written): one with no explanations (issue 5's target: under a minute on 2 cores) and one with
--explanations mistakes explained.
"""
from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
ARCHIVE = ROOT.parent / "shared" / "datasets" / "fer2013.tar.gz"


def unpack_validation(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/validation/" in m.name or m.name.endswith("/validation")]
        tar.extractall(into, members=members, filter="data")
    return into / "fer2013" / "validation"


def timed_audit(data: Path, model, out: Path, explanations: int, jobs: int) -> tuple[float, object]:
    from batchemo.outputs.tables import write_table
    from batchemo.pipeline.audit import audit
    from batchemo.report.audit import write_audit_report

    t0 = time.perf_counter()
    result = audit(data, model, max_explanations=explanations, jobs=jobs, progress=False)
    write_table(result.evaluation.table(), out / f"audit{explanations}.csv")
    write_audit_report(result, out / f"audit{explanations}.html")
    return time.perf_counter() - t0, result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="model file (.keras); default: the shipped model")
    p.add_argument("--data", type=Path, help="an unpacked validation folder (default: unpack the shared archive)")
    p.add_argument("--archive", type=Path, default=ARCHIVE, help="fer2013.tar.gz (default: %(default)s)")
    p.add_argument("--explanations", type=int, default=50, help="explained mistakes in the second run (default: 50)")
    p.add_argument("--jobs", type=int, default=2, help="LIME threads (default: 2)")
    a = p.parse_args(argv)

    from batchemo.emotions.model import load_model

    with tempfile.TemporaryDirectory(prefix="batchemo-audit-bench-") as tmp:
        tmp = Path(tmp)
        data = a.data
        if data is None:
            if not a.archive.exists():
                print(f"audit_speed: {a.archive} not found (give --archive or --data)", file=sys.stderr)
                return 2
            t0 = time.perf_counter()
            data = unpack_validation(a.archive, tmp)
            print(f"unpacked {data} in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        model = load_model(a.model)
        print(f"model {model.name} loaded in {time.perf_counter() - t0:.1f} s "
              f"(tta: {model.tta}); cpus: {os.cpu_count()}")
        for n in (0, a.explanations):
            wall, r = timed_audit(data, model, tmp, n, a.jobs)
            t = r.timings
            print(f"audit of {len(r.evaluation.labels)} faces, {len(r.explained):>2} explained mistakes: "
                  f"{wall:6.1f} s wall  (load {t['load']:.1f} s, predict {t['predict']:.1f} s, "
                  f"explain {t['explain']:.1f} s, report+csv {wall - t['total']:.1f} s)  "
                  f"accuracy {r.accuracy:.4f}, ECE {r.ece:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
