"""`batchemo run` and `batchemo.analyze`: real photos, generated images, bad input, the report, parallel runs."""
from __future__ import annotations

import html.parser
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from batchemo import analyze
from batchemo.emotions.model import CLASSES
from batchemo.outputs.rows import TABLE_COLUMNS

from .conftest import write_image

HOSTILE = "<img src=x onerror=alert(1)>.jpg"


class _Parser(html.parser.HTMLParser):
    """Collects tags and the URLs they reference; raises nothing, so we check structure ourselves."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.face_blocks = 0
        self.cards = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key):
                self.urls.append(a[key])
        cls = (a.get("class") or "").split()
        self.face_blocks += "face" in cls
        self.cards += "card" in cls


def parse(path) -> _Parser:
    p = _Parser()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    return p


@pytest.fixture(scope="module")
def media_run(photos, tmp_path_factory, untrained_model_path):
    """The real photos plus a broken file, a truncated JPEG and a hostile name, through the CLI."""
    root = tmp_path_factory.mktemp("media")
    shutil.copytree(photos, root / "photos")
    bad = root / "bad"
    bad.mkdir()
    (bad / "not-an-image.jpg").write_text("hello, I am text")
    (bad / "truncated.jpg").write_bytes((photos / "obama.jpg").read_bytes()[:4000])
    shutil.copy(photos / "obama-240p.jpg", bad / HOSTILE)
    out = tmp_path_factory.mktemp("out") / "new" / "folder"
    r = subprocess.run(
        [sys.executable, "-m", "batchemo.cli", "run", str(root), "--report", str(out / "report.html"),
         "--csv", str(out / "faces.csv"), "--json", str(out / "faces.json"), "--model", str(untrained_model_path),
         "--lime-samples", "200", "-q"],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr
    return root, out, r


def _faces_of(df, name):
    rows = df[df["path"].str.endswith("/" + name)]
    assert len(rows), name
    return rows


def test_faces_in_real_photos(media_run):
    _, out, _ = media_run
    df = pd.read_csv(out / "faces.csv")
    assert list(df.columns) == TABLE_COLUMNS
    assert len(_faces_of(df, "photos/obama.jpg")) == 1
    assert (_faces_of(df, "photos/obama.jpg")["status"] == "ok").all()
    two = _faces_of(df, "two_people.jpg")
    assert len(two) == 2 and list(two["face_index"]) == [0, 1]
    nof = _faces_of(df, "no-faces.jpg")
    assert len(nof) == 1 and nof["status"].iloc[0] == "no_faces"
    rgba = _faces_of(df, "32bit.png")
    assert (rgba["status"] == "ok").all()
    ok = df[df["status"] == "ok"]
    np.testing.assert_allclose(ok[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0, atol=1e-4)
    assert set(ok["label"]) <= set(CLASSES)
    assert (ok["lime_label"] == ok["label"]).all()
    assert ok[["x", "y", "w", "h"]].notna().all().all()


def test_bad_files_are_reported_not_fatal(media_run):
    _, out, r = media_run
    df = pd.read_csv(out / "faces.csv", keep_default_na=False)
    failed = df[df["status"] == "failed"].set_index(df[df["status"] == "failed"]["path"].str.rsplit("/", n=1).str[-1])
    assert set(failed.index) == {"not-an-image.jpg", "truncated.jpg"}
    assert "not an image" in failed.loc["not-an-image.jpg", "reason"]
    assert "truncated" in failed.loc["truncated.jpg", "reason"]
    assert "failed: " in r.stderr and "truncated.jpg" in r.stderr
    assert (_faces_of(df, HOSTILE)["status"] == "ok").all()


def test_json_has_the_same_rows(media_run):
    _, out, _ = media_run
    js = pd.read_json(out / "faces.json")
    csv = pd.read_csv(out / "faces.csv")
    assert list(js.columns) == TABLE_COLUMNS and len(js) == len(csv)


def test_report_is_self_contained_and_complete(media_run):
    _, out, _ = media_run
    report = out / "report.html"
    p = parse(report)
    text = report.read_text()
    assert p.tags[0] == "html"
    assert not [u for u in p.urls if not u.startswith("data:")], "external URL in the report"
    assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", text)
    df = pd.read_csv(out / "faces.csv")
    assert p.face_blocks == (df["status"] == "ok").sum()
    assert p.cards == df.loc[df["status"].isin(["ok", "no_faces"]), "path"].nunique()  # small run: every image
    assert "Files that failed or were skipped" in text and "truncated.jpg" in text  # failures, listed
    # the hostile name is text, never markup
    assert "<img src=x onerror" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in text
    assert "images scanned" in text and "Mean probability per emotion" in text


def test_analyze_api_on_astronaut(tmp_path, astronaut_rgb, untrained_model_path):
    """Without ../shared: a real face photo from scikit-image, plus grayscale, 16-bit, RGBA and EXIF variants."""
    from PIL import Image

    write_image(tmp_path / "astronaut.jpg", astronaut_rgb)
    gray = (astronaut_rgb @ [0.299, 0.587, 0.114]).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    rgba = np.dstack([astronaut_rgb, np.full(gray.shape, 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    # stored rotated 90 degrees, with EXIF orientation 6 (rotate 90 CW to display) to put it upright
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(astronaut_rgb, 1)).save(tmp_path / "exif.jpg", exif=exif.tobytes())
    write_image(tmp_path / "noise.png", np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    df = analyze(tmp_path, model=untrained_model_path, explain=False, progress=False)
    status = df.groupby(df["path"].str.rsplit("/", n=1).str[-1])["status"].first().to_dict()
    assert status == {"astronaut.jpg": "ok", "exif.jpg": "ok", "gray.png": "ok", "gray16.png": "ok",
                      "noise.png": "no_faces", "rgba.png": "ok"}
    ok = df[df["status"] == "ok"]
    assert ok.groupby("path").size().max() == 1  # one face each
    exif_row = ok[ok["path"].str.endswith("exif.jpg")].iloc[0]
    ref = ok[ok["path"].str.endswith("astronaut.jpg")].iloc[0]
    assert abs(exif_row["x"] - ref["x"]) < 8 and abs(exif_row["y"] - ref["y"]) < 8  # upright, same place
    assert (exif_row["image_width"], exif_row["image_height"]) == (512, 512)
    assert df.attrs["images"] == 6 and list(df.columns) == TABLE_COLUMNS


def test_huge_image_is_downscaled_with_boxes_in_original_pixels(tmp_path, astronaut_rgb, untrained_model_path):
    import cv2

    from batchemo.sources.images import read_image

    big = cv2.resize(astronaut_rgb, (6144, 6144), interpolation=cv2.INTER_LINEAR)
    write_image(tmp_path / "big.jpg", big)
    rgb, scale = read_image(tmp_path / "big.jpg")
    assert max(rgb.shape[:2]) <= 2048 and scale == pytest.approx(max(rgb.shape[:2]) / 6144)
    small = analyze(tmp_path / "big.jpg", model=untrained_model_path, explain=False, progress=False)
    row = small[small["status"] == "ok"].iloc[0]
    assert row["image_width"] == 6144
    assert 6144 * 0.25 < row["x"] + row["w"] / 2 < 6144 * 0.6  # the astronaut's face, in original pixels


def test_lime_is_seeded_and_batched(untrained_model_path, lfw_faces):
    import cv2

    from batchemo.emotions.model import load_model
    from batchemo.explain.lime import LimeSettings, explain_face

    model = load_model(untrained_model_path)
    calls = []
    original = model.predict_scaled

    def spy(x, batch_size=512, **kw):
        calls.append(len(x))
        return original(x, batch_size, **kw)

    model.predict_scaled = spy
    crop = cv2.resize(lfw_faces[0], (48, 48))
    a = explain_face(model, crop, settings=LimeSettings(num_samples=300, quantized=False))
    b = explain_face(model, crop, settings=LimeSettings(num_samples=300, quantized=False))
    assert max(calls) >= 300  # all perturbations in one call, not lime's batches of 10
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k].heatmap, b[k].heatmap)
        assert a[k].segments.max() + 1 >= 20  # real superpixels, not lime's 1-3 quickshift blobs on 48x48
        assert a[k].boundaries.shape == (48, 48, 3)


def test_parallel_jobs_give_the_same_table(tmp_path, astronaut_rgb, untrained_model_path):
    for i in range(3):
        write_image(tmp_path / f"a{i}.jpg", np.roll(astronaut_rgb, 20 * i, axis=1))
    one = analyze(tmp_path, model=untrained_model_path, explain=False, progress=False, jobs=1)
    two = analyze(tmp_path, model=untrained_model_path, explain=False, progress=False, jobs=2)
    pd.testing.assert_frame_equal(one, two, atol=1e-5)


def test_dask_backend_on_a_local_cluster(tmp_path, astronaut_rgb, untrained_model_path):
    pytest.importorskip("distributed", reason="the dask extra (pip install 'batchemo[dask]') is not installed")
    from dask.distributed import LocalCluster

    write_image(tmp_path / "a.jpg", astronaut_rgb)
    (tmp_path / "broken.png").write_bytes(b"nope")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        df = analyze(tmp_path, model=untrained_model_path, explain=False, progress=False, jobs=1,
                     backend="dask", scheduler=cluster.scheduler_address)
    assert dict(zip(df["path"].str.rsplit("/", n=1).str[-1], df["status"])) == {"a.jpg": "ok", "broken.png": "failed"}


def test_cli_missing_path_and_nothing_processed(tmp_path, untrained_model_path):
    run = [sys.executable, "-m", "batchemo.cli", "run", "--csv", str(tmp_path / "o.csv"), "--model",
           str(untrained_model_path), "-q"]
    r = subprocess.run(run + [str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "nope: no such file or folder" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "x.jpg").write_bytes(b"not a jpeg")
    r = subprocess.run(run + [str(tmp_path / "only")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "1 failed" in r.stdout
    assert pd.read_csv(tmp_path / "o.csv")["status"].tolist() == ["failed"]


def test_a_failed_rerun_leaves_the_earlier_outputs_intact(tmp_path, astronaut_rgb, untrained_model_path,
                                                           monkeypatch):
    """The CLI's second run dies while writing its CSV: the first run's files stay as they were."""
    from batchemo.cli import main

    write_image(tmp_path / "in" / "a.jpg", astronaut_rgb)
    out = tmp_path / "out"
    args = ["run", str(tmp_path / "in"), "--csv", str(out / "faces.csv"), "--report", str(out / "r.html"),
            "--model", str(untrained_model_path), "--no-explain", "-q"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    write_image(tmp_path / "in" / "b.jpg", astronaut_rgb[:, ::-1])
    from batchemo.outputs.tables import TableWriter

    real, calls = TableWriter.write, []

    def write_then_crash(self, rows):
        real(self, rows)
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")

    monkeypatch.setattr(TableWriter, "write", write_then_crash)
    assert main(args) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # no temp file, nothing replaced
    assert [p.name for p in out.iterdir() if p.is_dir()] == [".r.html.resume"]  # kept: a rerun continues


def test_unwritable_output_fails_before_any_work(tmp_path, untrained_model_path, capsys, monkeypatch):
    """Guards the road `batchemo run` takes (analysis.run, the engine's workers): nothing of it may start."""
    from batchemo.cli import main
    from batchemo.pipeline import engine
    from batchemo.pipeline import run as analysis

    (tmp_path / "file").write_text("x")
    write_image(tmp_path / "in" / "a.jpg", np.zeros((64, 64, 3), np.uint8))
    started = []
    monkeypatch.setattr(analysis, "run", lambda *a, **k: started.append("run") or pytest.fail("analysis ran"))
    monkeypatch.setattr(engine, "process_image", lambda *a, **k: started.append("image"))
    rc = main(["run", str(tmp_path / "in"), "--report", str(tmp_path / "file" / "r.html"), "-q"])
    assert rc == 2 and "is a file, not a folder" in capsys.readouterr().err
    rc = main(["run", str(tmp_path / "missing"), "--csv", str(tmp_path / "o.csv"), "-q"])
    assert rc == 2 and "missing: no such file or folder" in capsys.readouterr().err
    assert started == []
    # and the guard can fail: with writable outputs, the same command does reach analysis.run
    with pytest.raises(pytest.fail.Exception):
        main(["run", str(tmp_path / "in"), "--csv", str(tmp_path / "o.csv"), "-q"])
    assert started == ["run"]


@pytest.mark.slow
def test_real_model_reads_a_smile(photos, default_model):
    """The shipped model on a real photo: a confident smile (the `justin.jpg` test photo smiles broadly)."""
    df = analyze(photos / "justin.jpg", explain=False, progress=False)
    row = df.iloc[0]
    assert row["status"] == "ok" and row["label"] == "happy" and row["confidence"] > 0.5


def test_run_on_a_folder_with_a_video_links_its_timeline(tmp_path, astronaut_rgb, untrained_model_path):
    from .test_video import write_video

    src = tmp_path / "in"
    write_image(src / "a.jpg", astronaut_rgb)
    canvas = np.zeros((300, 400, 3), np.uint8)
    frames = []
    small = astronaut_rgb[::2, ::2]
    for k in range(10):
        f = canvas.copy()
        f[20:276, 10 + 10 * k: 266 + 10 * k] = small
        frames.append(f)
    (src / "clips").mkdir()
    write_video(src / "clips" / "clip.avi", frames)
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "batchemo.cli", "run", str(src), "--report", str(out / "r.html"), "--csv",
         str(out / "r.csv"), "--model", str(untrained_model_path), "--no-explain", "-q"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "1 image: 1 with faces, 1 face" in r.stdout and "1 video: 1 analysed, 0 failed" in r.stdout
    faces = pd.read_csv(out / "r.csv")
    assert faces["path"].tolist() == [str(src / "a.jpg"), str(src / "clips" / "clip.avi")]
    video_row = faces.iloc[1]  # the video is not read as an image: its row points to its timeline
    assert (video_row["status"] == "video" and video_row["folder"] == "clips"
            and "1 face tracked, timeline in r.timeline.csv" in video_row["reason"])
    timeline = pd.read_csv(out / "r.timeline.csv")
    assert len(timeline) > 0 and timeline["face_id"].nunique() == 1
    from batchemo.outputs.columns import RUN, TIMELINE, expand  # the columns --help and the README document

    assert faces.columns.tolist() == [c for c in expand(RUN) if not c.startswith("emb_")]
    assert timeline.columns.tolist() == expand(TIMELINE)
    html = (out / "r.html").read_text()  # one report holds both: the photo's card and the video's section
    assert not (out / "r.videos.html").exists()
    assert "Emotions in 1 image and 1 video" in html and 'href="#video-1"' in html and 'id="video-1"' in html
    assert 'class="card"' in html and 'id="video-1-person_1"' in html and "r.timeline.csv" in html


def test_cache_resumes_and_recomputes_what_changed(tmp_path, astronaut_rgb, untrained_model_path, monkeypatch):
    from batchemo.pipeline import engine

    src = tmp_path / "in"
    for i in range(3):
        write_image(src / f"a{i}.jpg", np.roll(astronaut_rgb, 15 * i, axis=1))
    cache = tmp_path / "cache"
    first = analyze(src, model=untrained_model_path, explain=False, progress=False, cache=cache)
    assert first.attrs["cached"] == 0

    calls = []
    original = engine.process_image
    monkeypatch.setattr(engine, "process_image", lambda p, s, r=None: calls.append(p) or original(p, s, r))
    write_image(src / "a1.jpg", np.roll(astronaut_rgb, 40, axis=1))  # changed: must be recomputed
    again = analyze(src, model=untrained_model_path, explain=False, progress=False, cache=cache)
    assert calls == [str(src / "a1.jpg")] and again.attrs["cached"] == 2
    assert again.loc[again["path"] != str(src / "a1.jpg")].equals(first.loc[first["path"] != str(src / "a1.jpg")])
    calls.clear()
    analyze(src, model=untrained_model_path, explain=False, progress=False, cache=cache, min_score=0.1)
    assert len(calls) == 3  # other settings: nothing reused


def test_compiled_templates_are_kept_in_the_user_cache(tmp_path, monkeypatch):
    """A second run loads the report's templates compiled (no jinja2 compile); a cache that cannot be made
    costs only the compile."""
    import jinja2

    from batchemo import report

    monkeypatch.setenv("BATCHEMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(report, "_ENV", None)
    first = report.environment().get_template("run.html.j2")
    assert list((tmp_path / "cache" / "templates").iterdir())
    monkeypatch.setattr(report, "_ENV", None)
    monkeypatch.setattr(jinja2.Environment, "compile", lambda *a, **k: pytest.fail("compiled again"))
    assert report.environment().get_template("run.html.j2").blocks.keys() == first.blocks.keys()

    for entry in (tmp_path / "cache" / "templates").iterdir():  # a damaged cache: compiled afresh
        entry.write_bytes(entry.read_bytes()[:40])
    monkeypatch.undo()
    monkeypatch.setenv("BATCHEMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(report, "_ENV", None)
    assert report.environment().get_template("run.html.j2").blocks.keys() == first.blocks.keys()

    monkeypatch.undo()
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("BATCHEMO_CACHE", str(tmp_path / "file" / "cache"))  # under a file: cannot be made
    monkeypatch.setattr(report, "_ENV", None)
    assert report.environment().get_template("run.html.j2").blocks.keys() == first.blocks.keys()
