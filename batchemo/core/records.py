"""The records that cross the seams: sources -> faces -> predictions -> explanations -> outputs.

This module imports nothing from batchemo, so every stage can import it without pulling in another.
One columnar ``Faces`` record per image or video frame flows through the pipeline, in the spirit of
supervision's ``Detections``: each stage fills in its field and passes the record on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

#: The 7 FER2013 emotions, in the one order used everywhere. Saved with every model; never assume it.
CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

#: Side of the square grayscale crop the CNN reads.
INPUT_SIZE = 48

#: What became of one input (an image, a video, or a file found under a folder).
STATUS_OK = "ok"  # faces found and classified
STATUS_NO_FACES = "no_faces"  # read fine, no face in it
STATUS_PARTIAL = "partial"  # a video whose readable part was analysed (truncated or damaged)
STATUS_FAILED = "failed"  # could not be read; ``reason`` says why
STATUS_SKIPPED = "skipped"  # not a kind of file batchemo reads (e.g. .heic); ``reason`` says which
STATUS_VIDEO = "video"  # a video met by `batchemo run`: its row points to its timeline
STATUSES = (STATUS_OK, STATUS_NO_FACES, STATUS_PARTIAL, STATUS_FAILED, STATUS_SKIPPED, STATUS_VIDEO)

PROB_COLUMNS: list[str] = [f"p_{c}" for c in CLASSES]


class ModelError(Exception):
    """A model file that is missing, corrupt or does not fit batchemo (the message names the file).

    Here, not in model.py, because the runtime (which model.py imports) raises it too."""


@dataclass(frozen=True)
class Box:
    """A face box in pixels (x, y = top-left corner)."""

    x: int
    y: int
    w: int
    h: int

    def scaled(self, factor: float) -> "Box":
        return Box(*(int(round(v * factor)) for v in (self.x, self.y, self.w, self.h)))

    def iou(self, other: "Box") -> float:
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union else 0.0

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


@dataclass
class Explanation:
    """LIME's answer for one face and one class: superpixels, their weights, and the images a person reads."""

    label: str
    segments: np.ndarray  # int (48, 48): superpixel id per pixel
    weights: dict[int, float]  # superpixel id -> LIME weight for ``label``
    heatmap: np.ndarray  # float32 (48, 48): each pixel's superpixel weight
    boundaries: np.ndarray  # uint8 RGB (48, 48, 3): top features outlined, as lime's mark_boundaries draws
    score: float  # R^2 of LIME's local linear fit for this label
    # Faithfulness (RISE deletion/insertion, Petsiuk et al. 2018), on the classifier that was explained:
    # the area under this label's probability while superpixels are hidden (deletion) or revealed
    # (insertion) in LIME's order, most supporting first, and the same for random orders of this face.
    deletion_auc: float = float("nan")  # lower is better
    insertion_auc: float = float("nan")  # higher is better
    deletion_auc_random: float = float("nan")
    insertion_auc_random: float = float("nan")
    classifier: str = ""  # what LIME queried, e.g. "int8 TFLite, flip-averaged"
    num_samples: int = 0  # LIME perturbations behind this explanation

    @property
    def faithfulness(self) -> float:
        """How much better than random LIME's order explains the class, -1..1 (0: no better than chance).

        The mean of two gaps: how much faster the class's probability falls when the heatmap's regions are
        hidden first, and how much faster it comes back when they are revealed first, than in random order.
        """
        return 0.5 * ((self.deletion_auc_random - self.deletion_auc) + (self.insertion_auc - self.insertion_auc_random))


@dataclass
class Faces:
    """The faces of one image or video frame, as columns: row ``i`` of every array is face ``i``.

    Detection fills ``boxes``, ``scores``, ``landmarks`` and ``crops`` (aligned by the landmarks), and
    ``embeddings`` where people are wanted; classification adds ``probabilities`` and, where asked,
    ``explanations``; tracking adds ``track_ids``. Boxes are in pixels of the original image
    (before any downscaling for decoding or detection), faces ordered left to right.
    """

    source: str
    boxes: np.ndarray  # int64 (n, 4): x, y, w, h
    scores: np.ndarray  # float32 (n,): detector confidence
    crops: np.ndarray  # uint8 (n, 48, 48): what the CNN and LIME read
    frame: int | None = None  # video frame index
    time: float | None = None  # video timestamp, seconds
    probabilities: np.ndarray | None = None  # float32 (n, 7), CLASSES order
    explanations: list[dict[str, Explanation]] | None = None  # per face, keyed by the class explained
    landmarks: np.ndarray | None = None  # float32 (n, 5, 2): dlib's 5 points, original pixels
    embeddings: np.ndarray | None = None  # float32 (n, 128): identity (NaN rows: see embed_reasons)
    embed_reasons: list[str] | None = None  # per face, "" or why it has no embedding
    track_ids: np.ndarray | None = None  # int64 (n,), video only
    colour: np.ndarray | None = None  # uint8 (n, 112, 112, 3): the boxed face in colour, what a report shows
    unreadable: list[str] | None = None  # per face, "" or why its emotion cannot be read (readability)

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls, source: str, frame: int | None = None, time: float | None = None) -> "Faces":
        return cls(source, np.zeros((0, 4), np.int64), np.zeros(0, np.float32),
                   np.zeros((0, INPUT_SIZE, INPUT_SIZE), np.uint8), frame, time)

    def box(self, i: int) -> Box:
        return Box(*(int(v) for v in self.boxes[i]))

    @property
    def labels(self) -> list[str]:
        """The class each face is labelled with (argmax of ``probabilities``)."""
        if self.probabilities is None:
            raise ValueError("faces not classified yet")
        return [CLASSES[int(i)] for i in self.probabilities.argmax(1)] if len(self) else []

    @property
    def confidences(self) -> np.ndarray:
        if self.probabilities is None:
            raise ValueError("faces not classified yet")
        return self.probabilities.max(1) if len(self) else np.zeros(0, np.float32)

    def shown_explanation(self, i: int) -> Explanation | None:
        """The explanation of the class face ``i`` is labelled with, the one a person sees beside it."""
        if self.explanations is None:
            return None
        return self.explanations[i].get(self.labels[i])


def folder_of(path: str, root: str | None) -> str:
    """The folder of ``path`` relative to the folder it was found under (``root``; None: named directly): the
    table's ``folder`` column and the report's per-folder statistics. "." for a file at the top."""
    rel = os.path.relpath(path, root) if root is not None else os.path.basename(path)
    return os.path.dirname(rel) or "."


@dataclass
class ImageResult:
    """What became of one input file of a run: its status and, for a photo read fine, its faces and thumbnail.

    Workers return this record and nothing encoded: a sink makes table rows from it (``rows.image_rows``),
    a report makes pictures from it. ``faces`` is classified (probabilities, and explanations where asked),
    with ``colour`` crops filled. ``thumbnail`` is the decoded photo shrunk to the report's size.
    """

    path: str
    status: str
    reason: str = ""
    root: str | None = None  # the folder the file was found under (None: named directly)
    width: int | None = None  # original pixels
    height: int | None = None
    faces: Faces | None = None  # status ok: the classified faces
    thumbnail: np.ndarray | None = None  # uint8 (h, w, 3), long side <= RunSettings.thumb_side
    thumb_scale: float = 1.0  # thumbnail pixels per original pixel

    @property
    def folder(self) -> str:
        return folder_of(self.path, self.root)

    def __len__(self) -> int:
        return 0 if self.faces is None else len(self.faces)


@dataclass
class Shot:
    """A small picture of a frame and what to draw on it: drawn and encoded only by a report.

    ``image`` uint8 (h, w, 3) RGB; ``scale`` its pixels per original pixel; ``marks`` one
    (Box in original pixels, label, confidence, face id) per face to box and tag.
    """

    image: np.ndarray
    scale: float
    marks: list

    @classmethod
    def of(cls, image: np.ndarray, scale: float, faces: Faces, ids=None) -> "Shot":
        """The faces of a classified record as marks, tagged by ``ids`` (default: their index)."""
        labels, confs = faces.labels, faces.confidences
        ids = range(len(faces)) if ids is None else ids
        return cls(image, scale, [(faces.box(i), labels[i], float(confs[i]), int(k)) for i, k in enumerate(ids)])


@dataclass
class TimelineChunk:
    """The classified faces of consecutive sampled frames of one video, as columns: row ``i`` is one face in
    one frame. What a video's analysis streams to its spool, and what its timeline rows are made from.

    ``raw`` holds the CNN's probabilities for each frame alone, ``smoothed`` the face's exponential moving
    average (``faces.track.Smoother``; equal to ``raw`` when smoothing is off). The person of a face is its
    track's, known once the whole run is in.
    """

    video: str
    frame: np.ndarray  # int64 (n,)
    time: np.ndarray  # float64 (n,), seconds
    face_id: np.ndarray  # int64 (n,): the track
    boxes: np.ndarray  # int64 (n, 4): x, y, w, h in original pixels
    scores: np.ndarray  # float32 (n,)
    raw: np.ndarray  # float32 (n, 7), CLASSES order
    smoothed: np.ndarray  # float32 (n, 7)
    unreadable: list[str]  # per face, "" or why its emotion cannot be read

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def of(cls, video: str, faces: list["Faces"], smoothed: list[np.ndarray]) -> "TimelineChunk":
        """The chunk of classified, tracked frame records and their smoothed probabilities ((n_i, 7) each)."""
        rows = [(f, i) for f in faces for i in range(len(f))]
        if not rows:
            return cls.empty(video)
        return cls(
            video, np.array([f.frame for f, _ in rows], np.int64), np.array([f.time for f, _ in rows], np.float64),
            np.concatenate([f.track_ids for f in faces if len(f)]).astype(np.int64),
            np.concatenate([f.boxes for f in faces if len(f)]).astype(np.int64),
            np.concatenate([f.scores for f in faces if len(f)]).astype(np.float32),
            np.concatenate([f.probabilities for f in faces if len(f)]).astype(np.float32),
            np.concatenate([s for s in smoothed if len(s)]).astype(np.float32),
            [r for f in faces for r in (f.unreadable or [""] * len(f))])

    @classmethod
    def empty(cls, video: str) -> "TimelineChunk":
        k = len(CLASSES)
        return cls(video, np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 4), np.int64),
                   np.zeros(0, np.float32), np.zeros((0, k), np.float32), np.zeros((0, k), np.float32), [])


@dataclass(frozen=True)
class Moment:
    """A moment of a video worth jumping to: one face's strongest moment of an emotion (``kind`` "peak"), or
    the time its mood changed (``kind`` "change": ``previous`` held before, ``label`` after), on the
    smoothed timeline (``pipeline.moments`` says what counts)."""

    video: str
    face_id: int
    kind: str  # "peak" or "change"
    frame: int
    time: float  # seconds
    label: str  # the smoothed label at that moment
    confidence: float  # its smoothed probability then (a change: at the new label's first sample)
    box: tuple[int, int, int, int]  # x, y, w, h in original pixels
    previous: str = ""  # a change: the label held before
    held: float = 0.0  # seconds the label held (a peak: its run; a change: the new label's run, as far as seen)
