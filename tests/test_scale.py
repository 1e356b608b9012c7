"""Collections as users bring them: nothing dropped silently, bounded memory and report, resumable runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from batchemo.core.records import CLASSES
from batchemo.pipeline.gallery import Gallery, RunStats
from batchemo.sources.walk import walk

from .conftest import write_image


def test_walk_gives_every_file_a_kind_and_reason(tmp_path, astronaut_rgb):
    from PIL import Image

    root = tmp_path / "in"
    write_image(root / "a.jpg", astronaut_rgb)
    Image.fromarray(astronaut_rgb).save(root / "anim.gif")
    (root / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (root / "notes.txt").write_text("hello")
    (root / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (root / ".hidden.jpg").write_bytes(b"x")
    other = tmp_path / "elsewhere"
    for i in range(3):
        write_image(other / f"p{i}.png", astronaut_rgb[::2, ::2])
    (root / "linked").symlink_to(other, target_is_directory=True)
    (other / "loop").symlink_to(root, target_is_directory=True)  # a loop back up
    found = {str(f.path.relative_to(root)): (f.kind, f.reason) for f in walk([root])}
    assert set(found) == {"a.jpg", "anim.gif", "phone.heic", "notes.txt", "gone.jpg",
                          "linked/p0.png", "linked/p1.png", "linked/p2.png"}
    assert found["anim.gif"][0] == "image" and found["a.jpg"][0] == "image"
    assert found["phone.heic"][0] == "skipped" and "(.heic;" in found["phone.heic"][1]
    assert found["notes.txt"][0] == "skipped"
    assert found["gone.jpg"] == ("failed", f"broken symbolic link (points to {tmp_path / 'nowhere.jpg'})")
    dangling = walk([root / "gone.jpg"])  # named on the command line: a row, not an abort
    assert [(f.kind, f.reason[:20]) for f in dangling] == [("failed", "broken symbolic link")]


def test_run_gives_every_input_a_row(tmp_path, astronaut_rgb, untrained_model_path):
    from batchemo.cli import main

    from .test_video import write_video

    root = tmp_path / "in"
    write_image(root / "a.jpg", astronaut_rgb)
    (root / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (root / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (root / "broken.mp4").write_bytes(b"not a video at all" * 20)
    write_video(root / "ok.avi", [np.full((64, 64, 3), 90, np.uint8)] * 4)
    out = tmp_path / "out"
    rc = main(["run", str(root), "--csv", str(out / "t.csv"), "--report", str(out / "r.html"), "--model",
               str(untrained_model_path), "--no-explain", "-q"])
    assert rc == 0
    df = pd.read_csv(out / "t.csv", keep_default_na=False)
    status = dict(zip(df["path"].str.rsplit("/", n=1).str[-1], zip(df["status"], df["reason"])))
    assert set(status) == {"a.jpg", "phone.heic", "gone.png", "broken.mp4", "ok.avi"}
    assert status["a.jpg"][0] == "ok" and status["phone.heic"][0] == "skipped"
    assert status["gone.png"][0] == "failed" and "broken symbolic link" in status["gone.png"][1]
    assert status["broken.mp4"][0] == "failed" and "cannot open as a video" in status["broken.mp4"][1]
    assert status["ok.avi"][0] == "video" and "0 faces tracked, timeline in r.timeline.csv" in status["ok.avi"][1]
    html = (out / "r.html").read_text()
    assert "phone.heic" in html and "broken symbolic link" in html


def test_oversized_png_is_refused_with_its_size(tmp_path):
    from PIL import Image

    from batchemo.sources.images import read_image
    from batchemo.sources.walk import SourceError

    Image.new("L", (4000, 3000), 128).save(tmp_path / "big.png")
    with pytest.raises(SourceError, match=r"too large to decode: 4000x3000 pixels, over the limit of 1,000,000"):
        read_image(tmp_path / "big.png", max_pixels=1_000_000)
    Image.new("RGB", (4000, 3000), 128).save(tmp_path / "big.jpg")
    rgb, scale = read_image(tmp_path / "big.jpg", max_pixels=1_000_000)  # JPEG: decoded reduced instead
    assert max(rgb.shape[:2]) <= 2048 and scale < 1


def _rows(seq, label, conf, folder=".", status="ok"):
    """A photo's ImageResult with one face labelled ``label`` at ``conf`` (or none, for another status)."""
    from batchemo.core.records import Faces, ImageResult

    p = np.full(len(CLASSES), (1 - conf) / (len(CLASSES) - 1))
    p[CLASSES.index(label)] = conf
    path = f"/in/{seq}.jpg" if folder == "." else f"/in/{folder}/{seq}.jpg"
    if status != "ok":
        return ImageResult(path, status, "no face found", root="/in")
    faces = Faces(path, np.zeros((1, 4), np.int64), np.ones(1, np.float32), np.zeros((1, 48, 48), np.uint8),
                  probabilities=p[None].astype(np.float32))
    return ImageResult(path, status, root="/in", faces=faces)


def test_gallery_samples_every_folder_and_the_photos_without_faces():
    """Beside the emotions' extremes, a big run's gallery keeps a uniform sample of each folder (two cards;
    not just the first ones met) and a few photos without a face, and stays within its size."""
    g = Gallery(size=40, total=3500, seed=1)
    for seq in range(3000):  # every face alike: only the folder sample can keep most of them
        g.offer(seq, _rows(seq, "happy", 0.5, folder=f"f{seq % 5}"))
    for seq in range(3000, 3500):
        g.offer(seq, _rows(seq, "happy", 0.5, status="no_faces"))
    cards = g.cards()
    assert len(cards) <= 40
    per_folder = {}
    for rec in cards:
        per_folder.setdefault(rec.folder, []).append(int(rec.path.rsplit("/", 1)[-1][:-4]))
    no_face = per_folder.pop(".")
    assert len(no_face) == 2 and all(3000 <= k < 3500 for k in no_face)  # 5% of 40: two photos without a face
    assert sorted(per_folder) == [f"f{i}" for i in range(5)]
    assert all(len(kept) >= 2 for kept in per_folder.values())
    assert max(k for kept in per_folder.values() for k in kept) > 500  # a sample of the whole run, not its start
    assert [r.path for r in cards] == sorted((r.path for r in cards), key=lambda p: int(p.rsplit("/", 1)[-1][:-4]))


def test_gallery_is_bounded_and_keeps_the_telling_faces():
    rng = np.random.default_rng(0)
    g, stats = Gallery(size=40, total=5000), RunStats()
    confs = {}
    for seq in range(5000):
        label, conf = CLASSES[seq % 7], float(rng.uniform(0.2, 0.99))
        confs[seq] = (label, conf)
        rows = _rows(seq, label, conf, folder=f"f{seq % 50}")
        g.offer(seq, rows)
        stats.add(rows)
        assert len(g) <= 40  # bounded at every moment, not only at the end
    kept = {int(rec.path.rsplit("/", 1)[-1][:-4]) for rec in g.cards()}
    for label in CLASSES:
        mine = [s for s, (lb, _) in confs.items() if lb == label]
        assert max(mine, key=lambda s: confs[s][1]) in kept  # the surest face of each emotion
        assert min(mine, key=lambda s: confs[s][1]) in kept  # and the least sure
    assert stats.faces == 5000 and stats.label_counts.sum() == 5000 and len(stats.folders) == 50
    small = Gallery(size=40, total=30)
    for seq in range(30):
        small.offer(seq, _rows(seq, "happy", 0.9))
    assert len(small) == 30  # a small run shows every image


@pytest.mark.slow
def test_killed_run_resumes_with_every_file_once(tmp_path, astronaut_rgb, untrained_model_path):
    src, cache, out = tmp_path / "in", tmp_path / "cache", tmp_path / "out"
    for i in range(40):
        write_image(src / f"img{i:02d}.jpg", np.roll(astronaut_rgb, 7 * i, axis=1))
    cmd = [sys.executable, "-m", "batchemo.cli", "run", str(src), "--csv", str(out / "faces.csv"), "--cache",
           str(cache), "--model", str(untrained_model_path), "--lime-samples", "30", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(cache.rglob("*.pkl"))) < 5:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(cache.rglob("*.pkl")))
    assert 5 <= done_before < 40, "the run should have been killed part-way"
    assert not (out / "faces.csv").exists()  # a killed run leaves no half-written table in place
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out / "faces.csv")
    assert sorted(df["path"].str.rsplit("/", n=1).str[-1]) == [f"img{i:02d}.jpg" for i in range(40)]
    assert not [p for p in tmp_path.rglob(".tmp-*")]  # no temp file left, in the outputs or the cache


def test_parquet_table_has_the_json_rows(tmp_path, astronaut_rgb, untrained_model_path):
    """--csv x.parquet streams the same rows as --json, typed (text columns as strings, the rest numbers),
    people filled in at the end."""
    pytest.importorskip("pyarrow")
    from batchemo.cli import main

    root = tmp_path / "in"
    write_image(root / "a.jpg", astronaut_rgb)
    write_image(root / "b.png", np.ascontiguousarray(astronaut_rgb[:, ::-1]))
    (root / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    rc = main(["run", str(root), "--csv", str(out / "t.parquet"), "--json", str(out / "t.json"), "--model",
               str(untrained_model_path), "--lime-samples", "10", "-q"])
    assert rc == 0
    pq, js = pd.read_parquet(out / "t.parquet"), pd.read_json(out / "t.json", dtype=False)
    assert list(pq.columns) == list(js.columns) and len(pq) == len(js) == 3
    assert sorted(pq["status"]) == ["failed", "ok", "ok"]
    assert pq["path"].map(type).eq(str).all() and pq["lime_faithfulness"].dtype == float
    assert pq["person"].tolist() == js["person"].tolist()
    for col in pq.columns:
        a, b = pq[col].tolist(), js[col].tolist()
        same = [(x == y) or (pd.isna(x) and pd.isna(y)) or (isinstance(x, float) and np.isclose(x, y))
                for x, y in zip(a, b)]
        assert all(same), (col, a, b)
    assert not list(out.glob(".tmp-*"))


def test_a_cached_row_is_stale_once_the_model_card_changes(tmp_path):
    """The card says how a face is read (its TTA): editing it changes every label, so the cache must miss."""
    from batchemo.pipeline.cache import ResultCache
    from batchemo.pipeline.engine import RunSettings

    model, photo = tmp_path / "m.keras", tmp_path / "a.jpg"
    model.write_bytes(b"weights")
    photo.write_bytes(b"jpeg")
    card = tmp_path / "m.card.json"
    card.write_text('{"preprocessing": {"tta": "none"}}')
    settings = RunSettings(model_path=str(model))
    from batchemo.core.records import ImageResult

    ResultCache(tmp_path / "c", settings).put(str(photo), ImageResult(str(photo), "no_faces"))
    assert ResultCache(tmp_path / "c", settings).get(str(photo)) == ImageResult(str(photo), "no_faces")
    card.write_text('{"preprocessing": {"tta": "rot5"}}')
    assert not ResultCache(tmp_path / "c", settings).has(str(photo))


def test_a_cached_row_is_stale_once_the_detector_it_came_from_changes(tmp_path, monkeypatch):
    """Faces cached by one release's detector are not reused by the next: a changed default, class constant
    or network file changes the key (faces.fingerprint), though the run's own settings say 'auto' both times."""
    from batchemo.core.records import ImageResult
    from batchemo.faces import detect, yunet
    from batchemo.pipeline.cache import ResultCache
    from batchemo.pipeline.engine import RunSettings

    photo, settings = tmp_path / "a.jpg", RunSettings(detector="auto")
    photo.write_bytes(b"jpeg")
    monkeypatch.setattr(detect, "have_yunet", lambda: True)
    ResultCache(tmp_path / "c", settings).put(str(photo), ImageResult(str(photo), "no_faces"))
    assert ResultCache(tmp_path / "c", settings).has(str(photo))
    monkeypatch.setattr(detect.YunetDetector, "CONFIRM_MOST", 8)
    assert not ResultCache(tmp_path / "c", settings).has(str(photo))
    monkeypatch.undo()
    monkeypatch.setattr(detect, "have_yunet", lambda: True)
    assert ResultCache(tmp_path / "c", settings).has(str(photo))
    monkeypatch.setattr(detect.YunetDetector.__init__, "__defaults__",
                        tuple(0.5 if v == 0.3 else v for v in detect.YunetDetector.__init__.__defaults__))
    assert not ResultCache(tmp_path / "c", settings).has(str(photo))  # confirm_from's default moved
    monkeypatch.undo()
    monkeypatch.setattr(detect, "have_yunet", lambda: True)
    monkeypatch.setitem(yunet.FLATBUFFERS, "int8", yunet.FLATBUFFERS["float32"])  # another network file
    assert not ResultCache(tmp_path / "c", settings).has(str(photo))
