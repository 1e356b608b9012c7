"""Videos: the emotion timeline of each face, streamed from frames sampled at their real timestamps.

Why it is built this way:

- Frames stream from ``sources.video.VideoStream``; each sampled frame becomes a ``Faces`` record (the same
  record a photo gives), the tracker fills in its ``track_ids``, records are classified in batches by
  ``explain.classify.classify_faces`` (the road photos and audits take too), smoothed and folded into a
  ``clip.ClipState`` (numbers only) and written to the video's timeline spool as ``TimelineChunk``s. No
  frame outlives its small batch and no picture is kept, so memory stays flat however long the video;
  the few frames a report shows are decoded again at the end (``pictures``).
- With a work folder, the state is checkpointed every ``VideoOptions.checkpoint`` seconds of video beside
  the spool: a run stopped by Ctrl-C, a kill or a crash continues from the last checkpoint and ends with
  the same timeline, tracks and people as one that never stopped. A finished video is kept whole.
- A bad video never stops a batch: it gets status ``failed`` and a one-line reason; a truncated one keeps
  the timeline of its readable part (status ``partial``).
- Nothing here writes a table or draws: ``VideoAnalysis`` is records (info, tracks, moments, the spool).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import shutil
import sys
import tempfile
import time as _clock
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .. import __version__
from ..core.files import atomic_path, printable
from ..core.records import STATUS_FAILED, STATUS_NO_FACES, STATUS_OK, STATUS_PARTIAL, Faces, Moment, TimelineChunk
from ..explain.lime import LIME_SAMPLES
from ..faces.detect import DEFAULT_DETECTOR
from ..faces.fingerprint import detector_identity, detector_settings
from ..faces.track import FaceFollower
from ..sources.video import VideoStream
from ..sources.walk import SourceError, is_image
from .clip import ClipState
from .spool import Spool, read

#: Haar settings for video when none are given. Video frames are small and soft and a timeline needs the
#: face in most frames: 1.2 found a face in 45% of the Hamilton clip's frames against 34% at the seed's 1.3,
#: for 1.4x the detection time. 1.1 (the photo default) finds more but also false faces (on the astronaut's
#: suit) that become tracks of their own.
VIDEO_HAAR_OPTIONS = {"scale_factor": 1.2, "min_neighbors": 5}

#: The smoothing time constant by default, seconds (None or 0: off). benchmarks/smoothing.py on the shared
#: clip: 1 s halves the label changes per minute at the default 2 fps (36.6 -> 16.7) and cuts them 10x
#: when every frame is read (179 -> 18.6), for about 1 s of lag; 0.5 s left 2 fps flickering (30 a minute).
SMOOTH = 1.0

#: How often per second of video the whole frame is searched when frames are sampled faster (``--fps 0``:
#: every frame); between, each face is looked for in a small window around its last box
#: (track.FaceFollower). At 5 a second every frame of the shared clip kept 2.5 faces a frame (2.6 when
#: every frame is searched) for about half the CPU time (benchmarks/video_speed.py, docs/detection.md).
DETECT_FPS = 5.0


#: Seconds between two identity embeddings of one face: a track's identity is the mean of its embeddings.
#: Chosen when dlib's own pass took ~80 ms of CPU a face (70% of an every-frame run); on LiteRT it takes
#: ~2 ms (faces.embed), and the period stays because the clip's people were measured with it.
EMBED_PERIOD = 1.0


def _embed_due(faces: Faces, rgb: np.ndarray, scale: float, last: dict[int, float],
               period: float = EMBED_PERIOD) -> None:
    """Fill ``faces.embeddings`` for the faces whose track was last embedded ``period`` s ago or never
    (others get a NaN row and the reason); ``last`` maps face id -> time of its last embedding."""
    from ..faces.embed import EMBED_DIM
    from ..faces.embed import embed as embed_faces

    n, t = len(faces), faces.time or 0.0
    faces.embeddings = np.full((n, EMBED_DIM), np.nan, np.float32)
    faces.embed_reasons = ["embedded at another moment of its track"] * n
    due = [i for i in range(n) if t - last.get(int(faces.track_ids[i]), -math.inf) >= period - 1e-6]
    if not due:
        return
    boxes = np.round(faces.boxes[due] * scale).astype(np.int64)
    marks = None if faces.landmarks is None else faces.landmarks[due] * scale
    vecs, reasons = embed_faces(rgb, boxes, marks, scale)
    for j, i in enumerate(due):
        faces.embeddings[i], faces.embed_reasons[i] = vecs[j], reasons[j]
        last[int(faces.track_ids[i])] = t


def detect_every(fps: float, video_fps: float, detect_fps: float = DETECT_FPS) -> int:
    """Every how many sampled frames the whole frame is searched: 1 when frames are sampled at most
    ``detect_fps`` times a second (the default 2 fps: every sample), more when sampled faster."""
    rate = fps if fps > 0 else (video_fps or 30.0)
    if detect_fps <= 0:
        return 1
    return max(1, int(rate / detect_fps + 0.5))


@dataclass
class VideoAnalysis:
    """One video's analysis, as records: what happened (``info``: status, reason, warnings, duration,
    counts, settings: plain values), one ``people.refs.FaceRef`` per track, the moments found, and the
    timeline itself in ``spool`` (``chunks()``). ``filmstrip``: (frame, time, faces) of evenly spaced
    sampled frames. ``pictures``: what ``pipeline.pictures`` decoded again for a report (None until then).
    """

    info: dict
    tracks: list = field(default_factory=list)
    moments: list[Moment] = field(default_factory=list)
    spool: Path | None = None
    filmstrip: list = field(default_factory=list)
    pictures: object = None
    typical: list[Moment] = field(default_factory=list)  # each face's most confident sample (moments.typical)

    @property
    def status(self) -> str:
        return self.info["status"]

    def chunks(self) -> Iterator[TimelineChunk]:
        """The timeline, chunk by chunk, in time order."""
        return read(self.spool) if self.spool is not None else iter(())

    def person_of(self) -> dict[int, str]:
        """face id -> person ("" where none), once ``people.refs.assign`` has named the tracks."""
        return {int(t.track): t.person for t in self.tracks}

    @property
    def rows(self) -> int:
        """Rows of the timeline (faces x sampled frames)."""
        return int(self.info.get("rows") or 0)


def resolve_model(model):
    from ..emotions.model import EmotionModel

    if isinstance(model, EmotionModel):
        return model
    from .engine import worker_model

    return worker_model(str(model) if model else None)


def resolve_detector(detector, options: dict | None):
    if not isinstance(detector, str):
        return detector
    from .engine import worker_detector

    if options is None and detector == "haar":
        options = VIDEO_HAAR_OPTIONS
    return worker_detector(detector, dict(options or {}))


@dataclass
class VideoOptions:
    """How a video is analysed (``video_timeline``, ``analyze_videos``); every field has a working default.

    ``fps``: frames sampled per second of video (0: every frame). ``detector``: a name or a detector object;
    ``detector_options`` its settings (None: haar gets VIDEO_HAAR_OPTIONS, others their defaults).
    ``smooth``: time constant in seconds of the per-face exponential smoothing (default SMOOTH; None or 0:
    off). ``detect_fps``: with frames sampled faster than this, the whole frame is searched this many times
    a second of video and each face is found again in a window around its last box between (0: search
    every sampled frame).
    ``explain_keyframes``: LIME heatmaps for that many keyframes per face seen in at least
    ``min_face_samples`` sampled frames, ``jobs`` at once, ``lime_samples`` perturbations each, seeded by
    ``seed``. ``max_side``: frames are decoded at most this long (pixels). ``filmstrip``: frames in a video's
    filmstrip. ``max_gap``: seconds a track may go unseen (None: max(2, 3 / fps)). ``batch_faces``: faces per
    CNN call. ``people``: identity embeddings per track. ``checkpoint``: seconds of video between two
    checkpoints of a video analysed with a work folder (a stopped run continues from the last one).
    ``progress``: a tqdm bar.
    """

    fps: float = 2.0
    detector: object = DEFAULT_DETECTOR
    detector_options: dict | None = None
    smooth: float | None = SMOOTH
    detect_fps: float = DETECT_FPS
    explain_keyframes: int = 0
    lime_samples: int = LIME_SAMPLES
    seed: int = 0
    max_side: int = 1280
    filmstrip: int = 12
    max_gap: float | None = None
    batch_faces: int = 64
    min_face_samples: int = 3
    jobs: int = 2
    people: bool = True
    checkpoint: float = 10.0
    progress: bool = True

    @classmethod
    def of(cls, options: "VideoOptions | None" = None, **changes) -> "VideoOptions":
        """``options`` (or the defaults) with ``changes``; an unknown name is a TypeError naming it."""
        return replace(options or cls(), **changes)

    def check(self) -> None:
        if self.explain_keyframes < 0:
            raise ValueError(f"explain_keyframes must be >= 0, got {self.explain_keyframes}")
        if self.smooth is not None and not (self.smooth >= 0 and math.isfinite(self.smooth)):
            raise ValueError(f"smoothing time constant must be >= 0 seconds, got {self.smooth}")


def _start_info(path, opts: VideoOptions, em, det) -> dict:
    """A video's ``info`` before it is read: status failed until it is analysed, and the settings."""
    return {
        # the name escaped if it is not UTF-8: pandas 3 refuses lone surrogates, and one video would end a run
        "video": printable(str(path)), "name": os.path.basename(printable(str(path))), "status": STATUS_FAILED,
        "reason": "",
        "warnings": [], "width": 0, "height": 0, "fps_nominal": 0.0, "frame_count": 0, "duration": 0.0,
        "frames_decoded": 0, "frames_sampled": 0, "sample_period": 0.0, "faces": 0, "seconds": 0.0,
        "fps": opts.fps, "smooth": opts.smooth or None, "detector": getattr(det, "name", str(opts.detector)),
        "detect_fps": opts.detect_fps,
        "detector_options": {**detector_settings(det), **(opts.detector_options or {})},
        "explain_keyframes": opts.explain_keyframes, "lime_samples": opts.lime_samples,
        "min_face_samples": opts.min_face_samples, "model": dict(em.card.__dict__), "resumed_at": None,
    }

def video_timeline(path: str | os.PathLike, model=None, options: VideoOptions | None = None,
                   work: str | os.PathLike | None = None, **changes) -> VideoAnalysis:
    """The emotion timeline of one video, as a ``VideoAnalysis`` (the timeline streamed to its spool).

    ``model``: an EmotionModel, a .keras path, or None for the shipped one. ``options``: a VideoOptions;
    keyword arguments change single fields of it (``video_timeline(p, fps=0)``). ``work``: a folder that
    keeps the spool and checkpoints, so that the same call after a stop continues where it stopped (None:
    a temp folder, removed with the result). A bad file never raises: status ``failed`` and a reason
    instead; model and detector errors do raise.
    """
    opts = VideoOptions.of(options, **changes)
    opts.check()
    em = resolve_model(model)
    det = resolve_detector(opts.detector, opts.detector_options)
    t_start = _clock.time()
    info = _start_info(path, opts, em, det)
    if is_image(Path(path)):
        info.update(reason="a photo, not a video: `batchemo run` reads photos", seconds=_clock.time() - t_start)
        return VideoAnalysis(info)
    folder, owned = _folder(path, opts, em, work)
    if owned:  # a temp folder: nothing will resume from it, so no checkpoints
        opts = replace(opts, checkpoint=math.inf)
    try:
        return keep_with(_timeline(path, opts, em, det, info, folder, owned, t_start), folder if owned else None)
    except BaseException:  # Ctrl-C or a model error: a temp folder (embeddings identify people) goes at once
        if owned:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _timeline(path, opts: VideoOptions, em, det, info: dict, folder: Path, owned: bool, t_start: float
              ) -> VideoAnalysis:
    """``video_timeline`` in its work folder: the finished analysis kept there, or the video read on from
    its last checkpoint (one whose spool lost what it recorded is dropped: the video starts afresh)."""
    done = _load(folder / DONE_FILE)
    if done is not None:  # finished before: kept whole
        return replace(done, spool=folder / SPOOL_FILE)
    state = _load(folder / STATE_FILE)
    spool = folder / SPOOL_FILE
    if state is not None and (spool.stat().st_size if spool.exists() else 0) < state.spool_size:
        state = None
    try:
        stream = VideoStream(path, opts.fps, opts.max_side, skip=state.samples if state else 0)
    except SourceError as e:
        info.update(reason=e.reason, seconds=_clock.time() - t_start)
        return VideoAnalysis(info)
    if state is not None:
        info["resumed_at"] = round(state.last_time, 3)
    state, failure = _scan(stream, em, det, opts, folder, state)
    info.update(_outcome(stream, state, failure, opts.fps), seconds=_clock.time() - t_start)
    result = VideoAnalysis(info, _track_refs(state), state.moments.moments(), spool,
                           [k[1:] for k in state.film.kept], typical=state.moments.typical())
    if info["status"] != STATUS_FAILED and not owned:
        _save(folder / DONE_FILE, replace(result, spool=None))
        (folder / STATE_FILE).unlink(missing_ok=True)
    return result


#: Files of a video's work folder: the timeline spool, the last checkpoint, the finished analysis.
SPOOL_FILE, STATE_FILE, DONE_FILE = "timeline.spool", "state.pkl", "done.pkl"


def _folder(path, opts: VideoOptions, em, work) -> tuple[Path, bool]:
    """(the video's work folder, whether it is a temp one this call owns). A work folder's name covers
    everything the timeline depends on: the file (real path, size, modification time), the model and its
    card, and every setting that changes a row, so a changed video, model or setting starts afresh."""
    try:
        st = os.stat(path)
    except OSError:  # missing or unreadable: the stream says why; nothing to keep
        work = None
    if work is None:
        return Path(tempfile.mkdtemp(prefix="batchemo-video-")), True
    settings = {k: v for k, v in opts.__dict__.items() if k not in _NOT_IN_ROWS}
    # what the faces depend on (an object's repr differs from run to run: its name and settings instead)
    settings["detector"] = detector_identity(settings["detector"], opts.detector_options)
    key = {"file": f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}", "model": em.card.__dict__,
           "settings": settings, "batchemo": __version__}  # another version's checkpoints are not read
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode("utf-8", "surrogateescape"))
    folder = Path(work) / "videos" / digest.hexdigest()[:20]
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # embeddings identify people: private
    return folder, False


#: Settings that change no row of the timeline: a run that differs only in these continues the same work.
_NOT_IN_ROWS = ("progress", "jobs", "checkpoint", "explain_keyframes", "lime_samples", "seed", "min_face_samples")


def keep_with(result: VideoAnalysis, folder: Path | None) -> VideoAnalysis:
    """A temp work folder lives as long as its result."""
    if folder is not None:
        weakref.finalize(result, shutil.rmtree, folder, True)
    return result


def _load(path: Path):
    """A pickled checkpoint or finished analysis, or None (absent or unreadable: started afresh)."""
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError, ImportError):
        return None


def _scan(stream, em, det, opts: VideoOptions, folder: Path, state: ClipState | None) -> tuple[ClipState, str]:
    """Read every sampled frame (after those a checkpoint holds): detect, track, classify in batches, fold
    into the state, stream to the spool, checkpoint. Returns the state and why the stream failed ("")."""
    from tqdm.auto import tqdm

    from .engine import find_faces

    video = printable(str(stream.path))
    if state is None:
        max_gap = opts.max_gap if opts.max_gap is not None else (max(2.0, 3.0 / opts.fps) if opts.fps > 0 else 2.0)
        state = ClipState(video, opts.smooth, max_gap, opts.filmstrip)
    spool = Spool(folder / SPOOL_FILE, keep=state.spool_size if state.samples else None)
    follower = FaceFollower(det, detect_every(opts.fps, stream.info.fps, opts.detect_fps))
    follower.last, follower.since = state.follower_last, state.follower_since
    pending: list[Faces] = []
    bar = tqdm(total=stream.info.frame_count or None, unit="frame", desc=os.path.basename(video)[:30],
               disable=not opts.progress, file=sys.stderr, leave=False)
    try:
        with stream:
            for frame in stream:
                bar.update(stream.frames_decoded - bar.n)
                if state.cuts.is_cut(frame.rgb):  # a new shot: new tracks, a full search
                    state.tracker.cut()
                    follower.last = []
                faces = state.tracker.track(find_faces(frame.rgb, frame.scale, follower, video, frame.index,
                                                       frame.time))
                if opts.people:  # one identity embedding per face per EMBED_PERIOD
                    _embed_due(faces, frame.rgb, frame.scale, state.embedded)
                pending.append(faces)
                if sum(map(len, pending)) >= opts.batch_faces or len(pending) >= 16:
                    _flush(pending, em, state, spool, follower, opts, folder)
            _flush(pending, em, state, spool, follower, opts, folder, final=True)
    except SourceError as e:
        _flush(pending, em, state, spool, follower, opts, folder, final=True)
        return state, e.reason
    finally:
        bar.close()
    return state, ""


def _flush(pending: list[Faces], em, state: ClipState, spool: Spool, follower, opts: VideoOptions, folder: Path,
           final: bool = False) -> None:
    """Classify the pending frames in one call, fold them into the state, append their chunk to the spool,
    and checkpoint when ``opts.checkpoint`` seconds of video have passed since the last one."""
    from ..explain.classify import classify_faces

    if pending:
        classify_faces(em, pending)
        chunk = state.frames(pending)
        if len(chunk):
            spool.append(chunk)
        pending.clear()
    state.spool_size = spool.size
    state.follower_last, state.follower_since = follower.last, follower.since
    if not final and state.last_time - state.checkpoint_time >= opts.checkpoint:
        state.checkpoint_time = state.last_time
        _save(folder / STATE_FILE, state)


def _save(path: Path, obj) -> None:
    """``obj`` pickled atomically to ``path``, streamed to the file (an hour's state is never one bytes
    object in memory beside itself)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def _track_refs(state: ClipState) -> list:
    """One people.refs.FaceRef per track: its mean identity embedding, its most shown (smoothed) emotion,
    its samples, its time span (two tracks on screen together are never one person) and its mean side."""
    from ..core.records import CLASSES
    from ..faces.embed import EMBED_DIM
    from ..people.refs import FaceRef

    refs = []
    unknown = np.full(EMBED_DIM, np.nan, np.float32)  # one array for every track without an embedding
    unknown.flags.writeable = False
    for fid in sorted(state.tracks):
        s = state.tracks.pop(fid)  # each summary freed as its ref is made: an hour's thousands never held twice
        mean = (s.smoothed_sum / max(1, s.samples)).astype(np.float32)
        emb = (s.identity_sum / s.identity_n).astype(np.float32) if s.identity_n else unknown
        refs.append(FaceRef(source=state.video, label=CLASSES[int(np.argmax(s.label_counts))],
                            confidence=float(mean.max()), probabilities=mean, embedding=emb, track=int(fid),
                            weight=float(s.samples), time=float(s.first), end=float(s.last),
                            side=s.side_sum / max(1, s.samples)))
    return refs


def _outcome(stream, state: ClipState, failure: str, fps: float) -> dict:
    """Status, reason, counts and the measured durations of a video once read."""
    vinfo = stream.info
    n_faces = len(state.tracks)
    if failure:
        status, reason = STATUS_FAILED, failure
    elif stream.stopped:
        status, reason = STATUS_PARTIAL, f"truncated or damaged: {stream.stopped}"
    elif n_faces == 0:
        status, reason = STATUS_NO_FACES, f"no face found in {stream.frames_sampled} sampled frames"
    else:
        status, reason = STATUS_OK, ""
    sampled_span = (stream.last_time or 0.0) - (stream.first_time or 0.0)
    frame_period = 1.0 / vinfo.fps if vinfo.fps else (
        sampled_span / max(1, stream.frames_decoded - 1) if stream.frames_decoded > 1 else 0.0)
    span = state.last_time - (state.first_time or 0.0) if state.samples > 1 else 0.0
    sample_period = span / (state.samples - 1) if state.samples > 1 else (1.0 / fps if fps else frame_period)
    return dict(
        status=status, reason=reason, warnings=list(stream.warnings), width=vinfo.width, height=vinfo.height,
        fps_nominal=vinfo.fps, frame_count=vinfo.frame_count,
        duration=(sampled_span + frame_period) if stream.frames_decoded else 0.0,
        frames_decoded=stream.frames_decoded, frames_sampled=stream.frames_sampled,
        sample_period=sample_period, faces=n_faces, rows=sum(s.samples for s in state.tracks.values()),
    )


def analyze_videos(paths: Iterable[str | os.PathLike], model=None, options: VideoOptions | None = None,
                   log: Callable[[str], None] | None = None, known=None, tolerance: float | None = None,
                   work: str | os.PathLike | None = None, **changes) -> list[VideoAnalysis]:
    """``video_timeline`` for each path, with the model and detector loaded once; one VideoAnalysis each.

    ``options``: a VideoOptions, keyword arguments changing single fields; ``work``: the folder that makes
    a stopped run continue (``video_timeline``). A video that fails is recorded (status ``failed``,
    ``reason``) and the others go on; ``log`` receives one line per video as it finishes. Model and
    detector errors raise: no video could use them. With ``options.people`` the faces of all the videos
    are grouped into one set of people (``known``: a people.KnownFaces to name them; ``tolerance``:
    people.TOLERANCE unless given); a run with photos too names them over everything (``pipeline.run``).
    """
    opts = VideoOptions.of(options, **changes)
    em = resolve_model(model)
    opts = replace(opts, detector=resolve_detector(opts.detector, opts.detector_options))
    results = each_video(paths, em, opts, log, work)
    if opts.people:
        from ..people.cluster import TOLERANCE
        from ..people.refs import assign

        assign([t for r in results for t in r.tracks], known, TOLERANCE if tolerance is None else tolerance)
    return results


def each_video(paths: Iterable[str | os.PathLike], model, opts: VideoOptions, log: Callable[[str], None] | None,
               work: str | os.PathLike | None = None) -> list[VideoAnalysis]:
    """``video_timeline`` of each path with one model and detector (resolved), people left unnamed."""
    results = []
    for p in paths:
        results.append(video_timeline(p, model, opts, work))
        if log:
            log(describe(results[-1]))
    return results


def describe(result: VideoAnalysis) -> str:
    """One line about one video's analysis, for the terminal."""
    a = result.info
    name = a.get("video", "?")
    if a.get("status") == STATUS_FAILED:
        return f"{name}: failed: {a.get('reason')}"
    text = (f"{name}: {a['duration']:.1f} s, {a['frames_sampled']} frames sampled, "
            f"{a['faces']} face{'s' if a['faces'] != 1 else ''} tracked, {result.rows} rows, "
            f"in {a['seconds']:.1f} s")
    if a.get("resumed_at") is not None:
        text += f" (continued from {a['resumed_at']:.1f} s)"
    if a.get("status") == STATUS_NO_FACES:
        text += " (no face found)"
    for w in a.get("warnings", []):
        text += f"\n  warning: {w}"
    return text
