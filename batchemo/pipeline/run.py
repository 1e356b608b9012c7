"""One run over a collection: photos and videos, people shared between them, known faces named.

``run`` is what ``batchemo run`` and ``batchemo.analyze`` both do. It walks the inputs once, streams every
photo's ``ImageResult`` (engine) to the sinks, the running statistics and the bounded gallery, analyses the
videos (video: each streams its timeline to a spool), then names the people of photos and videos together
(people). It returns records; the output edge (``outputs``, ``report``) turns them into tables and
pictures once every person is named, so no file is written twice. Nothing here writes a table or encodes
an image.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Iterable, Sequence

import numpy as np

from ..core.records import STATUS_OK, ImageResult
from ..explain.lime import LIME_SAMPLES
from ..faces.detect import DEFAULT_DETECTOR
from ..people.cluster import TOLERANCE
from .gallery import GALLERY_SIZE, Gallery, RunStats
from .video import SMOOTH


@dataclass
class RunOptions:
    """Everything a run can be asked; ``batchemo.run(paths, RunOptions(...))`` or
    keyword arguments (``batchemo.analyze("photos/", explain=False)``).

    Photos: ``model`` (.keras path, None: the shipped one), ``detector`` and its ``detector_options``
    (None: each kind's default; haar on video frames: video.VIDEO_HAAR_OPTIONS), ``explain`` (LIME per
    face, ``lime_samples`` perturbations, ``seed``), ``jobs`` worker processes (None: what pays on this
    machine, engine.auto_jobs, as ``batchemo run`` does) on ``backend`` ("loky" or
    "dask", ``scheduler`` its address), ``cache`` (a folder: a stopped run resumes), ``max_pixels``
    (larger non-JPEG images are refused), ``gallery`` (image cards kept for a report).
    People: ``people`` (group faces of photos and videos into people), ``known_faces`` (a folder of
    DIR/<name>/*.jpg, or a people.KnownFaces), ``tolerance`` (embedding distance under which two faces are
    one person, people.TOLERANCE), ``embeddings`` (128 columns in the tables; private).
    Videos: ``fps`` (samples per second, 0: every frame), ``smooth`` (seconds, default video.SMOOTH; None: off),
    ``explain_keyframes`` (LIME for that many keyframes per face, when ``explain``; ``batchemo run`` asks
    for 1 when it writes a report). It is recorded in each video's settings; the keyframes' pictures and
    heatmaps are made at the edge, by ``pipeline.pictures.pictures_of(result.videos, explain=N)``, as the
    command line does before it writes a report.
    ``progress``: tqdm bars; ``log``: receives one line per video and per skipped known-faces photo.
    """

    model: str | os.PathLike | None = None
    detector: str = DEFAULT_DETECTOR
    detector_options: dict | None = None
    explain: bool = True
    lime_samples: int = LIME_SAMPLES
    seed: int = 0
    jobs: int | None = None
    backend: str = "loky"
    scheduler: str | None = None
    cache: str | os.PathLike | None = None
    max_pixels: int | None = None
    gallery: int = GALLERY_SIZE
    people: bool = True
    known_faces: object = None
    tolerance: float = TOLERANCE
    embeddings: bool = False
    fps: float = 2.0
    smooth: float | None = SMOOTH
    explain_keyframes: int = 0
    progress: bool = True
    log: Callable[[str], None] | None = None

    @classmethod
    def of(cls, options: "RunOptions | None" = None, **changes) -> "RunOptions":
        """``options`` (or the defaults) with ``changes``. A keyword that is no field is a detector option
        (``analyze(path, min_score=0.1)``, as before RunOptions)."""
        if options is not None and not isinstance(options, cls):
            raise TypeError(f"options must be a RunOptions, not {type(options).__name__} (give the model as "
                            f"model=..., and every other setting by name)")
        names = {f.name for f in fields(cls)}
        extra = {k: changes.pop(k) for k in list(changes) if k not in names}
        opts = replace(options or cls(), **changes)
        if extra:
            opts = replace(opts, detector_options={**(opts.detector_options or {}), **extra})
        return opts

    def settings(self):
        """The engine's per-photo RunSettings."""
        from ..explain.lime import LimeSettings
        from ..sources.images import MAX_PIXELS
        from .engine import RunSettings

        return RunSettings(model_path=str(self.model) if self.model else None, detector=self.detector,
                           detector_options=dict(self.detector_options or {}), explain=self.explain,
                           lime=LimeSettings(num_samples=self.lime_samples, seed=self.seed),
                           max_pixels=self.max_pixels or MAX_PIXELS, people=self.people)

    def video_options(self):
        """The video analysis' VideoOptions."""
        from .video import VIDEO_HAAR_OPTIONS, VideoOptions

        det_options = self.detector_options
        if self.detector == "haar":  # video frames are small and soft: haar's video defaults under the user's
            det_options = {**VIDEO_HAAR_OPTIONS, **(det_options or {})}
        return VideoOptions(fps=self.fps, detector=self.detector, detector_options=det_options,
                            smooth=self.smooth, explain_keyframes=self.explain_keyframes if self.explain else 0,
                            lime_samples=self.lime_samples, seed=self.seed, people=self.people,
                            progress=self.progress)


@dataclass
class RunResult:
    """A run, as records: statistics and gallery of the photos, the videos, and the people.

    ``stats``: counts over every photo input. ``gallery``: the ImageResults kept for a report. ``faces``: a
    people.refs.FaceRef per photo face (``source`` its file, ``face_index`` its place in it); ``videos``: a
    video.VideoAnalysis per video; ``info``: settings, model card, counts and timing. ``table``,
    ``timeline`` and ``moments``: the tables as DataFrames when the run was asked for them
    (``batchemo.run``, which is ``outputs.frames.run``); None from ``pipeline.run.run``, whose caller writes
    them from the records.
    """

    stats: RunStats
    gallery: Gallery
    info: dict
    faces: list = field(default_factory=list)
    videos: list = field(default_factory=list)
    options: RunOptions | None = None
    table: object = None
    timeline: object = None
    moments: object = None

    @property
    def refs(self) -> list:
        """Every face of the photos and every track of the videos, as people.refs.FaceRef."""
        return self.faces + [t for v in self.videos for t in v.tracks]

    def person_of_face(self) -> dict[tuple[str, int], str]:
        """(photo path, face index) -> person, for the faces that have one."""
        return {(r.source, r.face_index): r.person for r in self.faces if r.person}


def run(paths: str | os.PathLike | Iterable[str | os.PathLike], options: RunOptions | None = None, *,
        sinks: Sequence = (), **changes) -> RunResult:
    """Faces, emotions, explanations and people for every photo and video under ``paths``, as records.

    ``options``: a RunOptions; keyword arguments change single fields. Each photo's record goes, as soon
    as it is computed and in input order, to every sink's ``write(record)``, to the statistics and to the
    bounded gallery; then each video's analysis to ``write_video(analysis, root)``. Nothing else is kept:
    memory stays flat. People are named at the end (the result's ``refs``), so the sinks write their
    tables when the caller closes them with the result. With ``options.cache`` a stopped run continues:
    photos from their cached records, videos from their last checkpoint. A missing path raises before
    any work; a bad file never does (status and reason instead).
    """
    from ..sources.walk import walk
    from .engine import worker_detector

    opts = RunOptions.of(options, **changes)
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found = walk(paths)  # a missing path fails here, before the model's 10 s load
    # fail fast (missing dlib, bad option); 'auto' becomes the detector actually used, for the settings
    opts = replace(opts, detector=worker_detector(opts.detector, dict(opts.detector_options or {})).name)
    known = known_faces(opts)
    t0 = time.time()
    client = None
    if opts.backend == "dask":
        from .engine import dask_client

        client = dask_client(opts.scheduler)
    try:
        result = _run_photos([f for f in found if f.kind != "video"], opts, sinks, client)
        result.videos = _run_videos([f for f in found if f.kind == "video"], opts, sinks, client)
    finally:
        if client is not None:
            client.close()
    if opts.people:
        from ..people.refs import assign

        assign(result.refs, known, opts.tolerance)
    result.info.update(seconds=time.time() - t0, files=len(found), inputs=[str(p) for p in paths],
                       videos=len(result.videos), people=len({r.person for r in result.refs if r.person}))
    return result


# ---------------------------------------------------------------- the stages of a run
def known_faces(opts: RunOptions):
    """``opts.known_faces`` as a people.KnownFaces (None without it); its skipped photos are logged."""
    if not (opts.people and opts.known_faces is not None):
        return None
    from ..people.cluster import KnownFaces

    if isinstance(opts.known_faces, KnownFaces):
        return opts.known_faces
    from .engine import load_known_faces, worker_detector

    # the detector this process already loaded (run() loaded it to check it), not a second one
    known = load_known_faces(opts.known_faces, worker_detector(opts.detector, dict(opts.detector_options or {})))
    for photo, why in known.skipped:
        _log(opts, f"known faces: skipped {photo}: {why}")
    if not known.names:
        raise ValueError(f"{opts.known_faces}: no usable face in any sub-folder")
    _log(opts, f"known faces: {len(set(known.names))} people from {len(known.names)} photos")
    return known


def _log(opts: RunOptions, line: str) -> None:
    if opts.log is not None:
        opts.log(line)


def _run_photos(found: list, opts: RunOptions, sinks: Sequence, client=None) -> RunResult:
    """Stream every non-video input through the engine (on ``client``'s cluster, when given) to the sinks,
    statistics and gallery."""
    from tqdm.auto import tqdm

    from ..emotions.model import model_card
    from .engine import auto_jobs, image_records, worker_model

    settings = opts.settings()
    # before the cache keys on the card: a .keras without flatbuffers is converted here, once (its card
    # records it), not by each worker
    card, model_path = model_card(settings.model_path)
    images = sum(f.kind == "image" for f in found)
    stats, shown = RunStats(), Gallery(opts.gallery, total=images, seed=opts.seed)
    store = None
    if opts.cache is not None:
        from .cache import ResultCache

        store = ResultCache(opts.cache, settings)
    cached = sum(store.has(str(f.path)) for f in found if f.kind == "image") if store else 0
    jobs = auto_jobs(images - cached) if opts.jobs is None else opts.jobs  # None: what pays here
    if jobs == 1 and opts.backend == "loky":  # loaded once here, reused by the in-process work; else the
        worker_model(settings.model_path)  # workers load it, and the card is all this process needs
    refs = []
    with tqdm(total=len(found), unit="file", desc="batchemo", disable=not opts.progress, file=sys.stderr) as bar:
        for seq, rec in enumerate(image_records(found, settings, store, jobs, _on_cluster(settings, client))):
            if opts.people and rec.status == STATUS_OK:
                refs += _face_refs(rec)
            for sink in sinks:
                sink.write(rec)
            stats.add(rec)
            shown.offer(seq, rec)
            bar.update(1)
    info = dict(images=images, model=dict(card.__dict__), model_file=str(model_path or ""),
                detector=opts.detector,
                detector_options=dict(opts.detector_options or {}), explain=opts.explain,
                lime_samples=opts.lime_samples, jobs=jobs, backend=opts.backend, cached=cached,
                gallery=opts.gallery)
    return RunResult(stats, shown, info, refs, options=opts)


def _on_cluster(settings, client):
    """items -> records on ``client``'s cluster (``cluster.cluster_records``), or None without one."""
    if client is None:
        return None
    from .cluster import cluster_records

    return lambda items: cluster_records(items, settings, client)


def _face_refs(rec: ImageResult) -> list:
    """A people.FaceRef per face of one photo, with what can still show it once the photo is gone: its
    48x48 crop and int8 heatmap (4.6 KB a face)."""
    from ..faces.embed import EMBED_DIM
    from ..people.refs import FaceRef, quantise

    faces, refs = rec.faces, []
    labels, confs = faces.labels, faces.confidences
    for i in range(len(faces)):
        exp = faces.shown_explanation(i)
        emb = faces.embeddings[i] if faces.embeddings is not None else np.full(EMBED_DIM, np.nan, np.float32)
        refs.append(FaceRef(
            source=rec.path, label=labels[i], confidence=float(confs[i]), probabilities=faces.probabilities[i],
            embedding=np.asarray(emb, np.float32), face_index=i, crop=faces.crops[i],
            side=float(min(faces.box(i).w, faces.box(i).h)),
            heatmap=None if exp is None else quantise(exp.heatmap), lime_label="" if exp is None else exp.label))
    return refs


def _run_videos(found: list, opts: RunOptions, sinks: Sequence, client=None) -> list:
    """Every video's analysis (people named later, with the photos'), handed to the sinks in order: one
    task each on ``client``'s cluster, else here. With a cache folder, each video analysed here keeps its
    checkpoints there: a stopped run continues where it stopped."""
    if not found:
        return []
    from .video import each_video, resolve_detector, resolve_model

    vopts = opts.video_options()
    if client is not None:
        from .cluster import cluster_videos

        clips = cluster_videos([f.path for f in found], replace(vopts, progress=False),
                               str(opts.model) if opts.model else None, client, opts.log, opts.cache)
    else:
        vopts = replace(vopts, detector=resolve_detector(vopts.detector, vopts.detector_options))
        clips = each_video([f.path for f in found], resolve_model(opts.model), vopts, opts.log, opts.cache)
    for f, clip in zip(found, clips):
        root = str(f.root) if f.root is not None else None
        for sink in sinks:
            sink.write_video(clip, root)
    return clips
