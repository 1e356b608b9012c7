"""What a run's report can hold at any size: running statistics, and a bounded gallery of telling faces.

A run of 10^5 photos cannot keep every thumbnail (memory) nor show them all (a report of gigabytes), so
``RunStats`` folds every input into counts as it streams past, and ``Gallery`` keeps the images of at most
``size`` inputs: per emotion the most and the least confident faces, and a sample per folder. Small runs
(no more inputs than ``size``) keep everything, so a demo folder's report still shows every image.
"""
from __future__ import annotations

import heapq
import random

import numpy as np

from .confidence import FAITHFULNESS_WEAK, faithfulness_verdict, uncertain_label
from .records import CLASSES, STATUS_NO_FACES, STATUS_OK, STATUS_SKIPPED

#: Image cards in a run report unless asked otherwise: about 9 MB of thumbnails and heatmaps.
GALLERY_SIZE = 200
#: Failures and skipped files listed by name in a report (all of them are in the CSV).
LISTED_PROBLEMS = 1000
#: A heatmap whose faithfulness is below this is weak (confidence.faithfulness_verdict, measured there).
WEAK_FAITHFULNESS = FAITHFULNESS_WEAK


class RunStats:
    """Counts over every input of a run, folded in one input at a time (``add`` takes its table rows)."""

    def __init__(self):
        self.inputs = 0
        self.by_status: dict[str, int] = {}
        self.faces = 0
        self.label_counts = np.zeros(len(CLASSES), np.int64)
        self.uncertain_counts = np.zeros(len(CLASSES), np.int64)  # of label_counts, the uncertain labels
        self.prob_sums = np.zeros(len(CLASSES), np.float64)
        self.folders: dict[str, dict] = {}
        self.problems: list[dict] = []  # failed and skipped inputs: path, status, reason (the first LISTED_PROBLEMS)
        self.problems_total = 0
        self.faithfulness: list[float] = []  # one per explained face: 4 bytes each, kept for its quartiles

    def add(self, rows: list[dict]) -> None:
        first = rows[0]
        status = first["status"]
        self.inputs += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status == STATUS_SKIPPED:  # not an image: listed, but no part of any folder's image counts
            self._problem(first)
            return
        folder = self.folders.setdefault(first.get("folder", "."), {
            "images": 0, "faces": 0, "labels": np.zeros(len(CLASSES), np.int64)})
        folder["images"] += 1
        if status == STATUS_OK:
            for r in rows:
                k = CLASSES.index(r["label"])
                self.label_counts[k] += 1
                self.uncertain_counts[k] += uncertain_label(r["confidence"])
                folder["labels"][k] += 1
                self.prob_sums += [r[f"p_{c}"] for c in CLASSES]
            self.faces += len(rows)
            folder["faces"] += len(rows)
            self.faithfulness += [float(r["lime_faithfulness"]) for r in rows
                                  if r.get("lime_faithfulness") is not None and r["lime_faithfulness"] == r["lime_faithfulness"]]
        elif status != STATUS_NO_FACES:
            self._problem(first)

    def _problem(self, row: dict) -> None:
        self.problems_total += 1
        if len(self.problems) < LISTED_PROBLEMS:
            self.problems.append({"path": row["path"], "status": row["status"], "reason": row.get("reason", "")})

    def faithfulness_summary(self) -> dict | None:
        """Median and quartiles of the explanations' faithfulness, and how many are no better than chance."""
        if not self.faithfulness:
            return None
        f = np.asarray(self.faithfulness, np.float32)
        q1, med, q3 = (float(v) for v in np.percentile(f, [25, 50, 75]))
        return {"n": len(f), "median": med, "q1": q1, "q3": q3, "weak": int((f < WEAK_FAITHFULNESS).sum()),
                "verdict": faithfulness_verdict(med)}

    def count(self, status: str) -> int:
        return self.by_status.get(status, 0)


class Gallery:
    """The image cards a report shows: every input of a small run, a bounded, telling choice of a big one.

    ``offer(seq, rows)`` takes one input's rows (with their encoded images) in input order; ``cards()``
    gives the kept ones, in input order. Memory is bounded by ``size`` cards whatever the run's length
    (by at least 17 cards: one per emotion and end, a folder sample and a no-face photo).
    """

    def __init__(self, size: int = GALLERY_SIZE, total: int | None = None, seed: int = 0):
        if size < 0:
            raise ValueError(f"gallery size must be >= 0, got {size}")
        self.size = size
        self.keep_all = total is not None and total <= size
        self._cards: dict[int, list[dict]] = {}
        self._refs: dict[int, int] = {}
        per_end = max(1, (size * 6 // 10) // (2 * len(CLASSES)))  # 60% to the emotions' extremes
        self._heaps: dict[tuple[str, str], list] = {(c, end): [] for c in CLASSES for end in ("most", "least")}
        self._heap_size = per_end
        self._folders: dict[str, list] = {}
        self._folder_seen: dict[str, int] = {}
        self._per_folder = 2
        self._max_folders = max(1, (size * 3 // 10) // self._per_folder)  # 30% to folders, 5% to no-face photos
        self._no_faces: list[int] = []
        self._no_faces_seen = 0
        self._rng = random.Random(seed)

    def _hold(self, seq: int, rows: list[dict]) -> None:
        self._cards.setdefault(seq, rows)
        self._refs[seq] = self._refs.get(seq, 0) + 1

    def _release(self, seq: int) -> None:
        self._refs[seq] -= 1
        if self._refs[seq] == 0:
            del self._refs[seq], self._cards[seq]

    def _reservoir(self, kept: list, seen: int, cap: int, seq: int, rows: list[dict]) -> None:
        """Uniform sample of ``cap`` among ``seen`` offers (Algorithm R), holding what it keeps."""
        if len(kept) < cap:
            kept.append(seq)
            self._hold(seq, rows)
            return
        j = self._rng.randrange(seen)
        if j < cap:
            self._release(kept[j])
            kept[j] = seq
            self._hold(seq, rows)

    def offer(self, seq: int, rows: list[dict]) -> None:
        if self.size == 0:
            return
        if self.keep_all:
            self._hold(seq, rows)
            return
        status = rows[0]["status"]
        if status == STATUS_OK:
            for r in rows:
                conf = float(r["confidence"])
                for end, key in (("most", conf), ("least", -conf)):
                    heap = self._heaps[(r["label"], end)]
                    entry = (key, -seq, seq)
                    if len(heap) < self._heap_size:
                        heapq.heappush(heap, entry)
                        self._hold(seq, rows)
                    elif entry > heap[0]:
                        gone = heapq.heapreplace(heap, entry)
                        self._hold(seq, rows)
                        self._release(gone[2])
            folder = rows[0].get("folder", ".")
            if folder in self._folders or len(self._folders) < self._max_folders:
                kept = self._folders.setdefault(folder, [])
                self._folder_seen[folder] = self._folder_seen.get(folder, 0) + 1
                self._reservoir(kept, self._folder_seen[folder], self._per_folder, seq, rows)
        elif status == STATUS_NO_FACES:
            self._no_faces_seen += 1
            self._reservoir(self._no_faces, self._no_faces_seen, max(1, self.size // 20), seq, rows)

    def cards(self) -> list[list[dict]]:
        return [self._cards[k] for k in sorted(self._cards)]

    def __len__(self) -> int:
        return len(self._cards)
