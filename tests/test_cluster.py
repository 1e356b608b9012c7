"""A real Dask cluster: a ``dask scheduler`` and two ``dask worker`` processes started here (not LocalCluster),
each worker in its own mount namespace with a tmpfs over the photo folder, so that it cannot read a photo
of the client's: the client sends the bytes. The default analysis, explanations on; a worker killed
mid-run; a photo that kills every worker it is given.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from .conftest import write_image

pytestmark = [pytest.mark.slow]


def _can_hide_folders() -> str:
    """"" when ``unshare -rm`` can mount a tmpfs (a user and mount namespace), else why not."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    r = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt"], capture_output=True, text=True)
    return "" if r.returncode == 0 else f"unshare -rm cannot mount here: {r.stderr.strip()}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A scheduler and ``n`` workers (one thread each), the workers blind to ``hidden``."""

    def __init__(self, hidden, n: int = 2, nanny: bool = False, memory: str = "0", allowed_failures: int = 3):
        pytest.importorskip("distributed", reason="the dask extra (pip install 'batchemo[dask]') is not installed")
        why = _can_hide_folders()
        if why:
            pytest.skip(why)
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures)}
        self.scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                                           "127.0.0.1", "--port", self.address.rsplit(":", 1)[1], "--no-dashboard"],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        worker = (f"mount -t tmpfs none {hidden} && exec {sys.executable} -m distributed.cli.dask_worker "
                  f"{self.address} --nthreads 1 --no-dashboard --memory-limit {memory} "
                  f"{'--nanny' if nanny else '--no-nanny'}")
        self.workers = [subprocess.Popen(["unshare", "-rm", "sh", "-c", worker], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True) for _ in range(n)]
        from dask.distributed import Client

        with Client(self.address, timeout=60) as c:
            c.wait_for_workers(n, timeout=120)

    def kill_worker(self, k: int = 0) -> None:
        os.killpg(self.workers[k].pid, signal.SIGKILL)

    def close(self) -> None:
        for p in self.workers:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.scheduler.terminate()
        self.scheduler.wait(timeout=30)


@pytest.fixture
def photos(tmp_path, astronaut_rgb):
    folder = tmp_path / "photos"
    for i in range(10):
        img = np.roll(astronaut_rgb, 9 * i, axis=1)
        write_image(folder / f"img{i:02d}.jpg", img if i % 2 else np.ascontiguousarray(img[:, ::-1]))
    (folder / "broken.png").write_bytes(b"not a png at all")
    return folder


@pytest.fixture
def clip(photos, astronaut_rgb):
    """A 3 s video beside the photos (the astronaut sliding), which the workers cannot read either."""
    from .test_video import write_video

    frames = []
    for k in range(24):
        f = np.zeros((300, 420, 3), np.uint8)
        f[20:276, 4 * k: 256 + 4 * k] = astronaut_rgb[::2, ::2]
        frames.append(f)
    return write_video(photos / "clip.avi", frames)


def _table(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[]).reset_index(drop=True)


def test_the_default_analysis_on_a_real_cluster_survives_a_lost_worker(photos, clip, tmp_path):
    """Explanations on, photos and a video hidden from the workers, one worker killed after the third photo:
    every row of the table and the timeline equals a local run's."""
    import batchemo

    here = batchemo.run(photos, progress=False)
    local = here.table
    cluster = Cluster(photos)
    try:
        seen = []

        class KillAfterThree:
            def write(self, rec):
                seen.append(rec.path)
                if len(seen) == 3:
                    cluster.kill_worker(0)

            def write_video(self, analysis, root):
                pass

        result = batchemo.run(photos, backend="dask", scheduler=cluster.address, progress=False,
                              sinks=[KillAfterThree()])
    finally:
        cluster.close()
    remote = result.table
    assert len(seen) == 11 and remote["status"].value_counts().to_dict() == {"ok": 10, "failed": 1, "video": 1}
    assert len(result.timeline) == 6 and set(result.timeline["video"]) == {str(clip)}  # 3 s at 2 fps
    pd.testing.assert_frame_equal(result.timeline.drop(columns=["score"]), here.timeline.drop(columns=["score"]),
                                  atol=1e-4)
    assert (remote["lime_faithfulness"].notna() == (remote["status"] == "ok")).all()  # explained on the workers
    text = [c for c in local.columns if local[c].dtype == object] + ["face_index", "x", "y", "w", "h"]
    pd.testing.assert_frame_equal(remote[text], local[text])
    numbers = [c for c in local.columns if c not in text and c != "uncertain"]
    pd.testing.assert_frame_equal(remote[numbers], local[numbers], atol=1e-4, check_dtype=False)


def test_a_photo_that_kills_its_workers_is_failed_and_the_run_goes_on(photos, tmp_path):
    """A PNG of 12,000 x 12,000 pixels (small on disk, 430 MB decoded) given to workers allowed 350 MB:
    each dies (its nanny restarts it), the photo fails with a reason after the scheduler's allowed
    failures, and every other photo is analysed."""
    import zlib

    import batchemo

    width = height = 12000
    row = b"\x00" + bytes(width)  # filter byte + one grey row
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    head = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    (photos / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", idat)
                                      + chunk(b"IEND", b""))
    cluster = Cluster(photos, nanny=True, memory="350MB", allowed_failures=1)
    try:
        t = time.time()
        df = batchemo.analyze(photos, backend="dask", scheduler=cluster.address, progress=False, explain=False,
                              max_pixels=200_000_000)
    finally:
        cluster.close()
    status = dict(zip(df["path"].str.rsplit("/", n=1).str[-1], df["status"]))
    assert status.pop("bomb.png") == "failed" and status.pop("broken.png") == "failed"
    assert set(status.values()) == {"ok"} and len(status) == 10, df.loc[df["status"] != "ok", ["path", "reason"]]
    why = df.loc[df["path"].str.endswith("bomb.png"), "reason"].iloc[0]
    assert "stopped every worker it was given" in why, why
    assert time.time() - t < 300


def test_photos_lost_with_workers_go_again_one_at_a_time():
    """The client's second sends: each photo lost with a worker once is queued, sent when no other second
    send is in flight, and answered (never queued again) if lost a second time; a send that cannot read its
    photo lets the next one go."""
    from batchemo.pipeline.cluster import _Again

    again, sent = _Again(), []
    assert again.take(1, killed=True) and again.take(2, killed=True)  # both put off
    assert not again.take(3, killed=False)  # an answer, not a loss
    again.send_next(lambda i: sent.append(i) or True)
    assert sent == [1] and again.flying == 1
    again.send_next(lambda i: sent.append(i) or True)
    assert sent == [1]  # 2 waits while 1 flies
    assert not again.take(1, killed=True)  # lost again: its failed row is due
    again.send_next(lambda i: sent.append(i) or i != 2)  # 2 cannot be read now
    assert sent == [1, 2] and again.flying is None and not again.queue
