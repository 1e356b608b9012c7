"""Hostile inputs and misuse (issue 37, and issue 36's output names and resuming): every case answers with a
row and a reason, or with one line and exit 2, and loses no earlier output.

The corpus is built on the fly: odd names, special files, deep folders, bad CSVs and cards.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import interruptible, write_image

BAD_NAME = os.fsdecode(b"bad\xff\xfename.jpg")  # not UTF-8: Python carries it with surrogate escapes


def noise(path: Path, side: int = 64, seed: int = 0) -> Path:
    """A JPEG of noise (no face), written by Python: cv2.imwrite crashes on a name that is not UTF-8."""
    import cv2

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(".jpg", rng.integers(0, 255, (side, side, 3), dtype=np.uint8))[1].tobytes())
    return path


_NESTED: list[Path] = []  # the deepest folder of each chain made by nest(), removed at the end


def nest(top: Path, depth: int, name: str = "d") -> Path:
    """``depth`` nested folders under ``top``, made one by one (os.makedirs recurses)."""
    top.mkdir(parents=True, exist_ok=True)
    p = top
    for _ in range(depth):
        p = p / name
        p.mkdir()
    _NESTED.append(p)
    return p


@pytest.fixture(scope="session", autouse=True)
def _remove_nested_folders():
    """shutil.rmtree (and so pytest's clean-up) recurses once per level: remove deep chains bottom-up."""
    yield
    for deepest in _NESTED:
        p = deepest
        while p.name == deepest.name and p.exists():
            for entry in os.scandir(p):
                if not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.path)
            if any(os.scandir(p)):
                break
            p.rmdir()
            p = p.parent


def cli(*args: str) -> tuple[int, str, str]:
    """``batchemo ARGS`` in this process: (exit status, stdout, stderr); argparse's exits included."""
    import contextlib
    import io

    from batchemo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args))
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- walking
def test_walk_is_iterative_over_1100_nested_folders(tmp_path):
    from batchemo.sources.walk import walk

    noise(nest(tmp_path, 1100) / "deep.jpg")
    noise(tmp_path / "top.jpg")
    found = walk([tmp_path])
    assert [f.path.name for f in found] == ["top.jpg", "deep.jpg"] and all(f.kind == "image" for f in found)


def test_a_folder_past_path_max_is_a_row_with_its_reason(tmp_path):
    from batchemo.sources.walk import walk

    name = "x" * 200
    fd = os.open(tmp_path, os.O_RDONLY)
    try:  # made relative to an open folder: no path here is ever longer than PATH_MAX
        for _ in range(25):
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("lost.jpg", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    finally:
        os.close(fd)
    noise(tmp_path / "ok.jpg")
    found = walk([tmp_path])
    failed = [f for f in found if f.kind == "failed"]
    assert found[0].path.name == "ok.jpg" and len(failed) == 1
    assert "PATH_MAX" in failed[0].reason and len(str(failed[0].path)) > 4000


def test_an_unreadable_folder_is_a_row_not_silence(tmp_path, monkeypatch):
    from batchemo.sources import walk as sources

    noise(tmp_path / "locked" / "a.jpg")
    noise(tmp_path / "locked" / "b.jpg")
    noise(tmp_path / "open" / "c.jpg")
    real = os.scandir

    def scandir(path):  # root reads any folder: the refusal is simulated where the OS would give it
        if Path(path).name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(sources.os, "scandir", scandir)
    found = sources.walk([tmp_path])
    assert [(f.path.name, f.kind) for f in found] == [("locked", "failed"), ("c.jpg", "image")]
    assert found[0].reason == "cannot read folder: Permission denied"


# ---------------------------------------------------------------- special files
@pytest.fixture
def specials(tmp_path):
    """A FIFO named like a video and like a photo, a socket, and a link to /dev/urandom."""
    os.mkfifo(tmp_path / "pipe.mp4")
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "rand.jpg").symlink_to("/dev/urandom")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.png"))
    yield tmp_path
    sock.close()


def test_special_files_are_found_by_stat_and_never_opened(specials):
    from batchemo.sources.images import read_image
    from batchemo.sources.video import open_video
    from batchemo.sources.walk import SourceError

    signal.alarm(20)  # opening a FIFO blocks forever: fail the test rather than hang it
    try:
        with pytest.raises(SourceError, match="a named pipe \\(FIFO\\), not a regular file"):
            open_video(specials / "pipe.mp4")
        with pytest.raises(SourceError, match="a named pipe \\(FIFO\\)"):
            read_image(specials / "pipe.jpg")
        with pytest.raises(SourceError, match="a socket"):
            read_image(specials / "sock.png")
        with pytest.raises(SourceError, match="a character device \\(a link to /dev/urandom\\)"):
            read_image(specials / "rand.jpg")
    finally:
        signal.alarm(0)


def test_a_fifo_named_like_a_video_does_not_hang_video(specials, tmp_path):
    r = subprocess.run([sys.executable, "-m", "batchemo.cli", "video", str(specials / "pipe.mp4"), "--csv",
                        str(tmp_path / "out" / "t.csv"), "-q"], capture_output=True, text=True, timeout=240)
    assert r.returncode == 1 and "pipe.mp4: a named pipe (FIFO), not a regular file" in r.stderr


# ---------------------------------------------------------------- one run over the whole corpus
@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, untrained_model_path, astronaut_rgb):
    """``batchemo run`` over odd names, special files, deep folders and 1,003 empty photos, with all outputs."""
    import cv2

    src = tmp_path_factory.mktemp("hostile")
    noise(src / "good.jpg")
    noise(src / BAD_NAME, seed=1)
    clip = src / "plain.avi"  # a video with a face, then renamed to a name that is not UTF-8
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 8, (400, 300))
    for k in range(16):
        frame = np.zeros((300, 400, 3), np.uint8)
        frame[20:276, 10 + 5 * k: 266 + 5 * k] = astronaut_rgb[::2, ::2, ::-1]
        writer.write(frame)
    writer.release()
    clip.rename(src / os.fsdecode(b"clip\xff.avi"))
    (src / "new\nline.jpg").write_bytes(b"")  # fails: its stderr line must stay one line
    os.mkfifo(src / "pipe.mp4")
    os.mkfifo(src / "pipe.jpg")
    (src / "rand.jpg").symlink_to("/dev/urandom")
    noise(nest(src / "deep", 1100) / "deep.jpg", seed=2)
    for i in range(1003):  # more failures than the stderr list shows
        (src / "zz_empty" / f"{i:04d}.jpg").parent.mkdir(exist_ok=True)
        (src / "zz_empty" / f"{i:04d}.jpg").write_bytes(b"")
    out = tmp_path_factory.mktemp("out")
    proc = subprocess.run(
        [sys.executable, "-m", "batchemo.cli", "run", str(src), "--csv", str(out / "faces.csv"), "--json",
         str(out / "faces.json"), "--report", str(out / "r.html"), "--model", str(untrained_model_path),
         "--detector", "haar", "--no-explain", "-q"], capture_output=True, timeout=600)
    return src, out, proc


def test_every_hostile_input_gets_a_row_and_the_files_stay_valid(hostile_run):
    src, out, proc = hostile_run
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-2000:]
    rows = json.loads((out / "faces.json").read_text(encoding="utf-8"))  # strict UTF-8, valid JSON
    table = pd.read_csv(out / "faces.csv", encoding="utf-8")
    # good, bad name, the video, newline name, 2 FIFOs, the device link, the deep photo, the empty ones
    assert len(rows) == len(table) == 1 + 1 + 1 + 1 + 2 + 1 + 1 + 1003
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert by_name["bad\\xff\\xfename.jpg"]["status"] == "no_faces"  # escaped, and analysed
    assert by_name["new\\nline.jpg"]["reason"] == "empty file (0 bytes)"
    assert by_name["deep.jpg"]["status"] == "no_faces"
    assert by_name["clip\\xff.avi"]["status"] == "video" and "1 face tracked" in by_name["clip\\xff.avi"]["reason"]
    timeline = pd.read_csv(out / "r.timeline.csv", encoding="utf-8")
    assert len(timeline) > 0 and set(timeline["video"]) == {f"{src}/clip\\xff.avi"}
    assert by_name["pipe.jpg"]["reason"] == "a named pipe (FIFO), not a regular file: not read"
    assert by_name["pipe.mp4"]["status"] == "failed" and "named pipe" in by_name["pipe.mp4"]["reason"]
    assert by_name["rand.jpg"]["reason"].startswith("a character device (a link to /dev/urandom)")
    html = (out / "r.html").read_bytes().decode("utf-8")  # strict: the report stays valid UTF-8
    assert "bad\\xff\\xfename.jpg" in html
    assert not list(out.glob(".*"))  # no temp file, and the resume cache is gone once the run completed


def test_the_failure_list_is_one_line_each_and_says_what_it_left_out(hostile_run):
    from batchemo.pipeline.gallery import LISTED_PROBLEMS

    src, out, proc = hostile_run
    lines = proc.stderr.decode("utf-8").splitlines()
    listed = [ln for ln in lines if ln.startswith("failed: ")]
    assert f"failed: {src}/new\\nline.jpg: empty file (0 bytes)" in lines  # one line, not two
    failed_photos = 1003 + 3  # the empty photos, the newline one, the FIFO photo and the link to a device
    assert len(listed) == LISTED_PROBLEMS
    assert lines[-1] == (f"... and {failed_photos - LISTED_PROBLEMS} more failed or skipped files not listed here: "
                         f"{out / 'faces.csv'} has a row for every one, with its status and reason")


# ---------------------------------------------------------------- paths
def test_an_output_that_is_an_input_is_refused_before_any_work(tmp_path):
    victim = noise(tmp_path / "victim.jpg")
    before = victim.read_bytes()
    rc, _, err = cli("run", str(victim), "--csv", str(victim), "-q")
    assert rc == 2 and "--csv" in err and victim.read_bytes() == before
    rc, _, err = cli("run", str(tmp_path), "--report", str(tmp_path / "keep.png"), "-q")
    assert rc == 2 and "--report" in err and ".html" in err
    data = tmp_path / "fer2013.csv"
    data.write_text("emotion,pixels,Usage\n")
    rc, _, err = cli("audit", str(data), "--csv", str(data), "-q")
    assert rc == 2 and err.strip().endswith("is the input " + str(data)
                                            + ", which an output would replace: write it elsewhere")
    assert data.read_text() == "emotion,pixels,Usage\n"


def test_an_output_inside_the_folder_replacing_a_photo_is_refused(tmp_path):
    from batchemo.cli.options import replaced_input

    noise(tmp_path / "in" / "keep.jpg")
    assert replaced_input(tmp_path / "in" / "keep.jpg", [str(tmp_path / "in")]).startswith("a file the run reads")
    assert replaced_input(tmp_path / "in" / "sub" / "new.png", [str(tmp_path / "in")])  # would be read next time
    assert not replaced_input(tmp_path / "in" / "report.html", [str(tmp_path / "in")])  # `run . --report r.html`
    assert not replaced_input(tmp_path / "in" / ".hidden" / "x.png", [str(tmp_path / "in")])  # never walked


def test_two_outputs_of_one_run_must_differ(tmp_path):
    noise(tmp_path / "in" / "a.jpg")
    rc, _, err = cli("run", str(tmp_path / "in"), "--csv", str(tmp_path / "t.csv"), "--json", str(tmp_path / "t.csv"))
    assert rc == 2 and "given for two outputs of this run" in err and not (tmp_path / "t.csv").exists()


def test_a_device_pipe_or_folder_is_never_an_output(tmp_path):
    noise(tmp_path / "in" / "a.jpg")
    (tmp_path / "dir.csv").mkdir()
    os.mkfifo(tmp_path / "p.csv")
    (tmp_path / "null.csv").symlink_to("/dev/null")  # as root, replacing it would replace the device
    for name, why in [("dir.csv", "is a folder, expected a file name"),
                      ("p.csv", "a named pipe (FIFO), not a file an output may replace"),
                      ("null.csv", "a character device (a link to /dev/null), not a file an output may replace")]:
        rc, _, err = cli("run", str(tmp_path / "in"), "--csv", str(tmp_path / name), "-q")
        assert rc == 2 and err.strip() == f"batchemo: error: {tmp_path / name}: {why}"
    assert Path("/dev/null").is_char_device()


# ---------------------------------------------------------------- output names (issue 36)
@pytest.mark.parametrize("args, accepted", [
    (["--csv", "faces.xlsx"], ".csv, .json or .parquet"),
    (["--json", "faces"], "not a name without a suffix"),
    (["--report", "out.txt"], ".html or .htm"),
])
def test_a_suffix_that_does_not_match_what_is_written_is_refused(tmp_path, args, accepted):
    rc, _, err = cli("run", str(tmp_path), *args)
    assert rc == 2 and accepted in err and f"argument {args[0]}" in err


def test_an_output_that_cannot_be_created_is_found_before_the_first_photo(tmp_path, monkeypatch):
    from batchemo.core import files as outputs
    from batchemo.pipeline import run as analysis

    noise(tmp_path / "a.jpg")
    monkeypatch.setattr(analysis, "run", lambda *a, **k: pytest.fail("analysis ran before the output check"))
    rc, _, err = cli("run", str(tmp_path), "--report", "/proc/r.html", "-q")
    assert rc == 2 and err.startswith("batchemo: error: /proc/r.html: cannot write there:")
    real = outputs.tempfile.mkstemp

    def read_only(*a, dir=None, **k):
        if "ro" in str(dir):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(outputs.tempfile, "mkstemp", read_only)
    (tmp_path / "ro").mkdir()
    rc, _, err = cli("run", str(tmp_path), "--csv", str(tmp_path / "ro" / "t.csv"), "-q")
    assert rc == 2 and err.strip() == (f"batchemo: error: {tmp_path / 'ro' / 't.csv'}: "
                                       "cannot write there: Read-only file system")
    long_name = "n" * 300 + ".csv"
    rc, _, err = cli("run", str(tmp_path), "--csv", str(tmp_path / long_name), "-q")
    assert rc == 2 and "the file name is longer than 255 bytes" in err


# ---------------------------------------------------------------- concurrency
def test_only_temp_files_whose_writer_is_gone_are_cleaned(tmp_path):
    from batchemo.core.files import remove_stale_temp_files
    from batchemo.outputs.tables import TableWriter

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        theirs = tmp_path / f".tmp-{live.pid}.abc123-faces.csv"
        gone = tmp_path / f".tmp-{dead.pid}.def456-faces.csv"
        other = tmp_path / f".tmp-{dead.pid}.ghi789-other.csv"
        for f in (theirs, gone, other):
            f.write_text("partial")
        with TableWriter(tmp_path / "faces.csv", ["path"]) as mine:  # this run's own live temp file
            mine.write([{"path": "x"}])
            assert remove_stale_temp_files(tmp_path, "faces.csv") == 1
            assert theirs.exists() and not gone.exists() and other.exists() and not mine.closed
        live.kill()
        live.wait()
        assert remove_stale_temp_files(tmp_path) == 2 and not theirs.exists()
        assert (tmp_path / "faces.csv").read_text().splitlines() == ["path", "x"]
    finally:
        live.kill()


@pytest.mark.slow
def test_two_runs_writing_the_same_csv_at_once_both_finish(tmp_path, astronaut_rgb, untrained_model_path):
    """A short run starts and ends while a long one is writing the same CSV: the short one's start-up
    clean-up leaves the long one's rows alone (held in its own private spool until its people are named),
    and both finish (the last to finish holds the file)."""
    long_src, short_src, out = tmp_path / "long", tmp_path / "short", tmp_path / "faces.csv"
    for i in range(24):
        write_image(long_src / f"img{i:02d}.jpg", np.roll(astronaut_rgb, 7 * i, axis=1))
    noise(short_src / "a.jpg")
    cmd = [sys.executable, "-m", "batchemo.cli", "run", "--csv", str(out), "--model", str(untrained_model_path),
           "--no-resume", "-q"]
    # the long run explains with 1000 LIME samples a face: about 12 s, against 4 s for the short run
    first = subprocess.Popen(cmd + ["--lime-samples", "1000", str(long_src)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # the long run is under way (its model alone takes longer to load)
    second = subprocess.run(cmd + ["--lime-samples", "30", str(short_src)], capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr
    assert first.poll() is None, "the long run should still be running: the test proves nothing otherwise"
    assert len(pd.read_csv(out)) == 1  # the short run's table, complete
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert len(pd.read_csv(out)) == 24 and not list(tmp_path.glob(".tmp-*"))


# ---------------------------------------------------------------- errors
def test_a_model_card_of_the_wrong_shape_is_one_line_naming_it(tmp_path):
    from batchemo.emotions.model import ModelCard, ModelError

    card = tmp_path / "m.card.json"
    for text, why in [("[1, 2]", "the file holds a list, expected an object of fields"),
                      ('{"architecture": "default", "preprocessing": 3}',
                       "'preprocessing' is a number, expected an object"),
                      ('{"architecture": "default", "classes": "happy"}', "'classes' is a string, expected a list"),
                      ('{"architecture": "default", "epochs": 2.5}', "'epochs' is a number, expected a whole number"),
                      ('{"architecture": "default", "preprocessing": {"tta": 4}}', "'preprocessing.tta' is a number")]:
        card.write_text(text)
        with pytest.raises(ModelError) as e:
            ModelCard.load(tmp_path / "m.keras")
        assert str(e.value).startswith(f"{card}: unreadable model card: {why}")


def test_a_label_that_is_a_digit_but_not_a_number_names_file_line_and_value(tmp_path):
    from batchemo.sources.labelled import DatasetError, load_csv

    pixels = " ".join(["0"] * 48 * 48)
    data = tmp_path / "fer2013.csv"
    data.write_text(f"emotion,pixels,Usage\n3,{pixels},Training\n\u00b2,{pixels},Training\n", encoding="utf-8")
    with pytest.raises(DatasetError) as e:
        load_csv(data, "Training")
    assert str(e.value) == f"{data}:3: emotion '\u00b2' is not a label 0-6"


def test_a_dataset_folder_with_an_undecodable_name_and_deep_folders(tmp_path):
    import cv2

    from batchemo.sources.labelled import load_folder

    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / BAD_NAME).write_bytes(cv2.imencode(".png", np.full((48, 48), 128, np.uint8))[1].tobytes())
    write_image(nest(tmp_path / "sad", 1100) / "x.png", np.full((48, 48), 60, np.uint8))
    os.mkfifo(tmp_path / "sad" / "pipe.jpg")
    data = load_folder(tmp_path, n_jobs=1)
    assert data.counts()["happy"] == 1 and data.counts()["sad"] == 1
    assert data.skipped == [(str(tmp_path / "sad" / "pipe.jpg"), "unreadable or not an image")]


def test_known_faces_in_deep_folders_and_special_files_are_skipped_with_reasons(tmp_path):
    from batchemo.faces.detect import make_detector
    from batchemo.pipeline.engine import load_known_faces

    noise(nest(tmp_path / "Ada", 1100) / "deep.jpg")
    os.mkfifo(tmp_path / "Ada" / "pipe.jpg")
    known = load_known_faces(tmp_path, make_detector("haar"))
    assert sorted((Path(p).name, why) for p, why in known.skipped) == [
        ("deep.jpg", "no face to recognise"), ("pipe.jpg", "a named pipe (FIFO), not a regular file: not read")]


def test_a_full_disk_names_the_output_and_keeps_the_earlier_file(tmp_path, monkeypatch):
    from batchemo.core import files as outputs

    target = tmp_path / "faces.csv"
    target.write_text("earlier\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.os, "fsync", full)
    with pytest.raises(OSError) as e:
        outputs.atomic_write_text(target, "new")
    assert str(e.value) == f"{target}: cannot write: No space left on device" and e.value.errno == errno.ENOSPC
    from batchemo.outputs.tables import TableWriter

    with pytest.raises(OSError, match=f"^{target}: cannot write: No space left on device$"):
        with TableWriter(target, ["path"]) as w:
            w.write([{"path": "a"}])
    assert target.read_text() == "earlier\n" and [p.name for p in tmp_path.iterdir()] == ["faces.csv"]


def test_names_that_are_not_utf8_are_escaped_in_every_table_format(tmp_path):
    from batchemo.core.files import atomic_write_text
    from batchemo.outputs.tables import TableWriter, write_table

    rows = [{"path": f"/x/{BAD_NAME}", "reason": "line\nbreak"}]
    want = [{"path": "/x/bad\\xff\\xfename.jpg", "reason": "line\\nbreak"}]
    for suffix in (".csv", ".json", ".parquet"):
        with TableWriter(tmp_path / f"t{suffix}", ["path", "reason"]) as w:
            w.write(rows)
    assert pd.read_csv(tmp_path / "t.csv", encoding="utf-8").to_dict("records") == want
    assert json.loads((tmp_path / "t.json").read_bytes().decode("utf-8")) == want
    assert pd.read_parquet(tmp_path / "t.parquet").to_dict("records") == want
    write_table(pd.DataFrame(rows, dtype=object), tmp_path / "w.csv")  # pandas 3 str columns refuse surrogates
    assert pd.read_csv(tmp_path / "w.csv").to_dict("records") == want
    atomic_write_text(tmp_path / "r.html", f"<p>{BAD_NAME}</p>")
    assert (tmp_path / "r.html").read_bytes().decode("utf-8") == "<p>bad\\xff\\xfename.jpg</p>"


# ---------------------------------------------------------------- numbers
NUMERIC = [  # (command line, option named in the refusal)
    ["train", "d", "--out", "m.keras", "--lr", "-1"], ["train", "d", "--out", "m.keras", "--lr", "nan"],
    ["train", "d", "--out", "m.keras", "--mix-prob", "2"], ["train", "d", "--out", "m.keras", "--epochs", "0"],
    ["run", "x", "--csv", "a.csv", "--detector", "haar", "--scale-factor", "inf"],
    ["run", "x", "--csv", "a.csv", "--scale-factor", "nan"], ["run", "x", "--csv", "a.csv", "--seed", "-1"],
    ["run", "x", "--csv", "a.csv", "--lime-samples", "100000000"], ["run", "x", "--csv", "a.csv", "--jobs", "0"],
    ["video", "x", "--csv", "a.csv", "--fps", "inf"], ["video", "x", "--csv", "a.csv", "--smooth", "nan"],
    ["audit", "x", "--csv", "a.csv", "--sample", "-1"],
]


@pytest.mark.parametrize("args", NUMERIC, ids=lambda a: " ".join(a[-2:]))
def test_a_bad_number_is_refused_naming_its_option(args):
    rc, _, err = cli(*args)
    assert rc == 2 and f"argument {args[-2]}" in err and f": {args[-1]} is " in err and "Traceback" not in err


def test_every_numeric_option_rejects_nan_and_infinity_and_has_a_bound():
    """Any option with a number type, in any command: NaN, infinity and 10**12 are refused."""
    import argparse

    from batchemo.cli import build_parser

    checked = []
    commands = build_parser()._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.type not in (int, float), f"{name} {action.option_strings}: a bare number type"
            if not getattr(action.type, "__qualname__", "").startswith("number."):
                continue
            for bad in ("nan", "inf", "-inf", str(10**12)):
                with pytest.raises(argparse.ArgumentTypeError):
                    action.type(bad)
            checked.append(f"{name} {action.option_strings[0]}")
    assert {"train --lr", "run --scale-factor", "video --fps", "run --seed", "audit --sample"} <= set(checked)
    assert len(checked) >= 30


# ---------------------------------------------------------------- resuming (issue 36) and the cache (issue 35)
@pytest.mark.slow
def test_ctrl_c_then_the_same_command_continues_the_run(tmp_path, astronaut_rgb, untrained_model_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(24):
        write_image(src / f"img{i:02d}.jpg", np.roll(astronaut_rgb, 7 * i, axis=1))
    cmd = [sys.executable, "-m", "batchemo.cli", "run", str(src), "--csv", str(out / "faces.csv"), "--model",
           str(untrained_model_path), "--lime-samples", "30", "-q"]
    resume = out / ".faces.csv.resume"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(resume.rglob("*.pkl"))) < 3:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    done = len(list(resume.rglob("*.pkl")))
    assert proc.returncode == 130 and 3 <= done < 24, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("batchemo: error: interrupted: ") and "of 24 images are done and kept in" in last
    assert "run the same command again to continue" in last and not (out / "faces.csv").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    reused = int(again.stdout.split(" reused from ")[0].rsplit("; ", 1)[-1])
    assert reused >= done - 1  # the image being stored as the signal came may be redone
    df = pd.read_csv(out / "faces.csv")
    assert sorted(df["path"].str.rsplit("/", n=1).str[-1].unique()) == [f"img{i:02d}.jpg" for i in range(24)]
    assert not resume.exists() and not list(out.glob(".tmp-*"))  # cleaned up once complete


def test_a_damaged_cache_entry_is_recomputed_and_failures_are_not_cached(tmp_path, astronaut_rgb,
                                                                        untrained_model_path, monkeypatch):
    from batchemo.pipeline import engine

    calls = []
    original = engine.process_image
    monkeypatch.setattr(engine, "process_image", lambda p, s, r=None: calls.append(Path(p).name) or original(p, s, r))
    src, cache = tmp_path / "in", tmp_path / "cache"
    write_image(src / "a.jpg", astronaut_rgb)
    noise(src / "b.jpg")
    (src / "broken.jpg").write_bytes(b"not an image")
    args = ["run", str(src), "--csv", str(tmp_path / "t.csv"), "--cache", str(cache), "--model",
            str(untrained_model_path), "--no-explain", "-q"]
    assert cli(*args)[0] == 0 and sorted(calls) == ["a.jpg", "b.jpg", "broken.jpg"]
    first = pd.read_csv(tmp_path / "t.csv")
    entries = sorted(cache.rglob("*.pkl"))
    assert len(entries) == 2  # a.jpg and b.jpg; the failure is retried next time, never stored
    for entry in entries:
        entry.write_bytes(b"\x80\x04garbage")  # damaged
    calls.clear()
    assert cli(*args)[0] == 0 and sorted(calls) == ["a.jpg", "b.jpg", "broken.jpg"]  # damaged: computed again
    assert pd.read_csv(tmp_path / "t.csv").equals(first)
    import pickle

    assert sorted(Path(pickle.loads(e.read_bytes()).path).name for e in entries) == ["a.jpg", "b.jpg"]  # rewritten
    calls.clear()
    rc, out, _ = cli(*args)
    assert rc == 0 and calls == ["broken.jpg"] and cache.is_dir()  # only the failure is tried again; --cache kept
    assert pd.read_csv(tmp_path / "t.csv").equals(first)


def test_the_python_api_keeps_a_row_for_a_name_that_is_not_utf8(tmp_path, astronaut_rgb, untrained_model_path):
    """``batchemo.analyze`` builds a DataFrame, which refuses lone surrogates: the name is escaped, not fatal."""
    import batchemo

    good = write_image(tmp_path / "good.jpg", astronaut_rgb)  # OpenCV cannot take a name that is not UTF-8
    (tmp_path / BAD_NAME).write_bytes(good.read_bytes())
    df = batchemo.analyze(tmp_path, model=untrained_model_path, explain=False, people=False, progress=False)
    assert sorted(df["path"].map(os.path.basename).unique()) == ["bad\\xff\\xfename.jpg", "good.jpg"]
    assert set(df["status"]) == {"ok"}


def test_a_cached_photo_that_changes_after_listing_is_computed_and_keeps_the_others_in_place(tmp_path, monkeypatch):
    """A photo counted as cached, whose entry is gone by the time it is read (the file changed), is computed
    on its own: the fresh results of the other photos must not shift onto it."""
    from batchemo.core.records import STATUS_NO_FACES, ImageResult
    from batchemo.pipeline import engine
    from batchemo.sources.walk import walk

    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).write_bytes(b"x")

    class Store:  # lists a.jpg as cached; by the time it is read the file changed: no entry, none listed
        listed = False

        def has(self, path):
            first, self.listed = not self.listed, self.listed or path.endswith("a.jpg")
            return path.endswith("a.jpg") and first

        def get(self, path):
            return None

        def put(self, path, rec):
            pass

    monkeypatch.setattr(engine, "process_image",
                        lambda path, settings, root=None: ImageResult(path, STATUS_NO_FACES, os.path.basename(path)))
    recs = list(engine.image_records(walk([tmp_path]), engine.RunSettings(), Store(), jobs=1))
    assert [(os.path.basename(r.path), r.reason) for r in recs] == [("a.jpg", "a.jpg"), ("b.jpg", "b.jpg"),
                                                                    ("c.jpg", "c.jpg")]
