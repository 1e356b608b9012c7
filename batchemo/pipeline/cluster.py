"""Photos on a Dask cluster: each photo one task, its bytes sent by the client, its record sent back.

Why it is built this way:

- **No shared file system.** The client reads each photo and sends its bytes with the task, so a worker
  never opens a path of the client's (measured simpler and sound: no mount, no credentials, and the bytes
  of a photo, 0.1-10 MB, cost less to send than its analysis costs to compute). At most ``IN_FLIGHT`` tasks
  per worker thread are out at once, so the client holds a bounded number of photos in memory however
  many a run has.
- **Faults.** A task lost with its worker is run again elsewhere by the scheduler; a photo that kills every
  worker it is given (a decoder crash, memory blown) is given up after the scheduler's
  ``allowed-failures`` (3 by default) and gets a failed row with that reason, and the run goes on. A photo
  given up because it shared the workers such a photo took down is sent once more, with no other such
  photo in flight (``_Again``).
- **In order.** Records come back in input order, whatever order the tasks finish in, so the sinks, the
  gallery and the resume cache see the same stream as in a local run.
- **No nested pools.** A worker explains its faces in its own threads (``explain.lime``), never through
  joblib, which inside a Dask worker hands its work back to Dask.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterator, Sequence

from ..core.records import STATUS_FAILED, ImageResult

#: Tasks out at once per worker thread: enough to keep every worker busy while results travel back.
IN_FLIGHT = 3
#: How often a task lost with its worker is run again (the scheduler's allowed-failures bounds a crash).
RETRIES = 2


def photo_task(path: str, data: bytes, settings, root: str | None) -> ImageResult:
    """What a worker does with one photo: ``engine.process_image`` on the bytes the client sent."""
    from .engine import process_image

    return process_image(path, replace(settings, threads_per_worker=1), root, data)


def cluster_records(items: Sequence[tuple[str, str | None]], settings, client) -> Iterator[ImageResult]:
    """An ImageResult for each (path, root), in order, computed on ``client``'s cluster."""
    from dask.distributed import as_completed

    window = IN_FLIGHT * max(1, sum(client.nthreads().values()))
    pending, done, waiting = iter(enumerate(items)), {}, as_completed()
    futures, nxt, again = {}, 0, _Again()
    while nxt < len(items):
        again.send_next(lambda j: _send(client, j, *items[j], futures, waiting, done, settings))
        while len(futures) < window and _submit(client, pending, futures, waiting, done, settings):
            pass
        if nxt not in done:
            fut = next(waiting)
            i = futures.pop(fut)
            killed = fut.status == "error" and type(fut.exception()).__name__ == "KilledWorker"
            if not again.take(i, killed):  # it may only have shared the workers another photo took down
                done[i] = _result(fut, *items[i])
            continue
        yield done.pop(nxt)
        nxt += 1


class _Again:
    """Photos lost with workers, sent once more, one at a time: two such photos in flight at once could
    take each other down again, so a photo that only shared a worker with one that kills workers comes
    back ok, and the killer gets the failed row. Fresh photos still run beside a re-sent one (a second
    killer among them could take it down once more). Rare: the scheduler itself runs a task lost with a
    worker again, up to its allowed-failures (3), before the client sees it lost."""

    def __init__(self):
        from collections import deque

        self.queue: deque[int] = deque()
        self.seen: set[int] = set()
        self.flying: int | None = None

    def take(self, i: int, killed: bool) -> bool:
        """True when photo ``i``'s answer is put off: lost with a worker for the first time, it is queued."""
        if i == self.flying:
            self.flying = None
        if not killed or i in self.seen:
            return False
        self.seen.add(i)
        self.queue.append(i)
        return True

    def send_next(self, send) -> None:
        """Send the next queued photo if none is in flight (``send(i)`` is False when it cannot be read:
        its record is then done, and the next is tried)."""
        while self.flying is None and self.queue:
            i = self.queue.popleft()
            if send(i):
                self.flying = i


def _submit(client, pending, futures: dict, waiting, done: dict, settings) -> bool:
    """Send the next photo that can be read; one the client cannot read is answered here, not sent. False
    when none is left."""
    for i, (path, root) in pending:
        if _send(client, i, path, root, futures, waiting, done, settings):
            return True
    return False


def _send(client, i: int, path: str, root: str | None, futures: dict, waiting, done: dict, settings) -> bool:
    """Send photo ``i``'s bytes and task; False (and its failed record) when the client cannot read it."""
    import uuid

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        done[i] = ImageResult(path, STATUS_FAILED, f"cannot read: {e.strerror or type(e).__name__}", root)
        return False
    fut = client.submit(photo_task, path, data, settings, root, pure=False, retries=RETRIES,
                        key=f"batchemo-photo-{i}-{uuid.uuid4().hex}")
    futures[fut] = i
    waiting.add(fut)
    return True


def _result(fut, path: str, root: str | None) -> ImageResult:
    """The task's record, or a failed one saying why the cluster could not give it."""
    try:
        return fut.result()
    except Exception as e:  # KilledWorker: the photo took every worker it was given down with it
        kind = type(e).__name__
        why = ("it stopped every worker it was given (a decoder crash, or memory blown)" if kind == "KilledWorker"
               else f"{kind}: {str(e).strip().splitlines()[-1][:200] if str(e).strip() else ''}")
        return ImageResult(path, STATUS_FAILED, f"analysis failed on the cluster: {why}", root)


def video_task(path: str, data: bytes, options, model_path: str | None):
    """What a worker does with one video: its analysis from the bytes the client sent (written to a temp
    file there), returned with its timeline chunks (the worker's spool does not outlive the task)."""
    import tempfile
    from pathlib import Path

    from .video import video_timeline

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(path).name
        local.write_bytes(data)
        result = video_timeline(local, model_path, options)
        return result, list(result.chunks()), str(local)


def cluster_videos(paths: Sequence, options, model_path: str | None, client, log=None, work=None) -> list:
    """One ``video.VideoAnalysis`` per video, each video one task on ``client``'s cluster (its bytes sent by
    the client, one video per worker thread at a time), its timeline written to a spool of the client's
    (under ``work`` when given), its names mapped back to the client's path."""
    import tempfile
    from pathlib import Path

    from .spool import Spool
    from .video import describe, keep_with

    threads = max(1, sum(client.nthreads().values()))
    out, futures, todo = [], [], list(enumerate(paths))
    while todo or futures:
        while todo and len(futures) < threads:
            i, p = todo.pop(0)
            data = client.scatter(Path(p).read_bytes()) if Path(p).is_file() else b""
            futures.append((i, p, client.submit(video_task, str(p), data, options, model_path, pure=False,
                                                retries=RETRIES)))
        i, p, fut = futures.pop(0)
        if work is not None:
            analysis = _local(fut, str(p), Spool(Path(work) / "videos" / f"cluster-{i}.spool"))
        else:  # a temp folder per video, removed with its analysis
            folder = Path(tempfile.mkdtemp(prefix="batchemo-video-"))
            analysis = keep_with(_local(fut, str(p), Spool(folder / "timeline.spool")), folder)
        out.append(analysis)
        if log:
            log(describe(analysis))
    return out


def _local(fut, path: str, spool) -> object:
    """A worker's video analysis made the client's: chunks to the client's spool, names its path's."""
    from dataclasses import replace as rep

    from ..core.files import printable
    from ..core.records import STATUS_FAILED
    from .video import VideoAnalysis

    name = printable(path)
    try:
        result, chunks, remote = fut.result()
    except Exception as e:  # the video took its workers down, or the task failed
        return VideoAnalysis({"video": name, "name": name.rsplit("/", 1)[-1], "status": STATUS_FAILED,
                              "reason": f"analysis failed on the cluster: {type(e).__name__}", "warnings": [],
                              "faces": 0, "rows": 0, "duration": 0.0, "seconds": 0.0})
    for c in chunks:
        spool.append(rep(c, video=name))
    info = dict(result.info, video=name, name=name.rsplit("/", 1)[-1],
                reason=result.info.get("reason", "").replace(remote, name))
    for t in result.tracks:
        t.source = name
    return rep(result, info=info, spool=spool.path, moments=[rep(m, video=name) for m in result.moments],
               typical=[rep(m, video=name) for m in result.typical])
