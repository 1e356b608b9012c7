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

from ..core.records import CLASSES, STATUS_NO_FACES, STATUS_OK, STATUS_SKIPPED
from ..emotions.doubt import doubtful
from ..explain.faithfulness import FAITHFULNESS_WEAK, faithfulness_verdict

#: Image cards in a run report unless asked otherwise: about 9 MB of thumbnails and heatmaps.
GALLERY_SIZE = 200
#: Failures and skipped files listed by name in a report (all of them are in the CSV).
LISTED_PROBLEMS = 1000
#: A heatmap whose faithfulness is below this is weak (confidence.faithfulness_verdict, measured there).
WEAK_FAITHFULNESS = FAITHFULNESS_WEAK


class RunStats:
    """Counts over every input of a run, folded in one input at a time (``add`` takes its ImageResult)."""

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

    def add(self, rec) -> None:
        """Fold in one input (a ``records.ImageResult``)."""
        status = rec.status
        self.inputs += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status == STATUS_SKIPPED:  # not an image: listed, but no part of any folder's image counts
            self._problem(rec)
            return
        folder = self.folders.setdefault(rec.folder, {
            "images": 0, "faces": 0, "labels": np.zeros(len(CLASSES), np.int64)})
        folder["images"] += 1
        if status == STATUS_OK and len(rec):
            faces = rec.faces
            top = faces.probabilities.argmax(1)
            counts = np.bincount(top, minlength=len(CLASSES))
            self.label_counts += counts
            self.uncertain_counts += np.bincount(top[doubtful(faces)], minlength=len(CLASSES))
            folder["labels"] += counts
            self.prob_sums += faces.probabilities.sum(0)
            self.faces += len(faces)
            folder["faces"] += len(faces)
            for i in range(len(faces)):
                exp = faces.shown_explanation(i)
                if exp is not None and exp.faithfulness == exp.faithfulness:
                    self.faithfulness.append(float(exp.faithfulness))
        elif status not in (STATUS_OK, STATUS_NO_FACES):
            self._problem(rec)

    def _problem(self, rec) -> None:
        self.problems_total += 1
        if len(self.problems) < LISTED_PROBLEMS:
            self.problems.append({"path": rec.path, "status": rec.status, "reason": rec.reason})

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

    ``offer(seq, rec)`` takes one input's ``records.ImageResult`` (faces, crops, thumbnail as arrays) in input
    order; ``cards()`` gives the kept ones, in input order. Memory is bounded by ``size`` cards whatever the run's
    length (by at least 17 cards: one per emotion and end, a folder sample and a no-face photo).
    """

    def __init__(self, size: int = GALLERY_SIZE, total: int | None = None, seed: int = 0):
        if size < 0:
            raise ValueError(f"gallery size must be >= 0, got {size}")
        self.size = size
        self.keep_all = total is not None and total <= size
        self._cards: dict[int, object] = {}
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

    def _hold(self, seq: int, rec) -> None:
        self._cards.setdefault(seq, rec)
        self._refs[seq] = self._refs.get(seq, 0) + 1

    def _release(self, seq: int) -> None:
        self._refs[seq] -= 1
        if self._refs[seq] == 0:
            del self._refs[seq], self._cards[seq]

    def _reservoir(self, kept: list, seen: int, cap: int, seq: int, rec) -> None:
        """Uniform sample of ``cap`` among ``seen`` offers (Algorithm R), holding what it keeps."""
        if len(kept) < cap:
            kept.append(seq)
            self._hold(seq, rec)
            return
        j = self._rng.randrange(seen)
        if j < cap:
            self._release(kept[j])
            kept[j] = seq
            self._hold(seq, rec)

    def offer(self, seq: int, rec) -> None:
        if self.size == 0:
            return
        if self.keep_all:
            self._hold(seq, rec)
            return
        if rec.status == STATUS_OK and len(rec):
            for conf, label in zip(rec.faces.confidences, rec.faces.labels):
                for end, key in (("most", float(conf)), ("least", -float(conf))):
                    self._rank(self._heaps[(label, end)], (key, -seq, seq), rec)
            folder = rec.folder
            if folder in self._folders or len(self._folders) < self._max_folders:
                kept = self._folders.setdefault(folder, [])
                self._folder_seen[folder] = self._folder_seen.get(folder, 0) + 1
                self._reservoir(kept, self._folder_seen[folder], self._per_folder, seq, rec)
        elif rec.status == STATUS_NO_FACES:
            self._no_faces_seen += 1
            self._reservoir(self._no_faces, self._no_faces_seen, max(1, self.size // 20), seq, rec)

    def _rank(self, heap: list, entry: tuple, rec) -> None:
        """Keep ``rec`` if ``entry`` is among the heap's ``_heap_size`` largest."""
        if len(heap) < self._heap_size:
            heapq.heappush(heap, entry)
            self._hold(entry[2], rec)
        elif entry > heap[0]:
            gone = heapq.heapreplace(heap, entry)
            self._hold(entry[2], rec)
            self._release(gone[2])

    def cards(self) -> list:
        """The kept ImageResults, in input order."""
        return [self._cards[k] for k in sorted(self._cards)]

    def __len__(self) -> int:
        return len(self._cards)
