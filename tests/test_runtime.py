"""The analysis runtime: LiteRT from TFLite flatbuffers, no TensorFlow in an analysis, a quiet console,
conversion of a user's own .keras file once, and the same labels as the Keras model."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from batchemo.core.runtime import beside, digest, litert_available
from batchemo.emotions.model import DEFAULT_MODEL_PATH, ModelCard, ModelError, load_model

from .conftest import ROOT

pytestmark = pytest.mark.skipif(not litert_available(), reason="ai-edge-litert has no wheel here")

NOISE = ("XNNPACK", "absl", "oneDNN", "TF_ENABLE", "tensorflow", "WARNING: All log", "I0000", "W0000", "E0000")


def test_shipped_model_ships_its_flatbuffers_and_runs_on_litert(default_model):
    card = json.loads(ModelCard.path_for(DEFAULT_MODEL_PATH).read_text())
    assert card["export"]["keras_sha256"] == digest(DEFAULT_MODEL_PATH)  # made from this very .keras file
    for kind, path in beside(DEFAULT_MODEL_PATH).items():
        assert path.exists() and card["export"][kind]["file"] == path.name
        assert card["export"][kind]["faces"] == 3589
    assert card["export"]["float32"]["label_agreement"] >= 0.995
    assert default_model.runtime == "litert" and default_model.keras_model is None
    assert default_model.int8 is not None and default_model.int8.kind == "int8"


def _script(body: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_an_analysis_never_imports_tensorflow_and_prints_no_library_log_lines(tmp_path, astronaut_rgb):
    """A whole `batchemo run` (explanations and people on, the shipped model) in a fresh process: TensorFlow
    is never imported, and stderr holds no TensorFlow/absl/oneDNN/XNNPACK line."""
    from .conftest import write_image

    photo = write_image(tmp_path / "in" / "astronaut.jpg", astronaut_rgb)
    body = (
        "import sys\nfrom batchemo.cli import main\n"
        f"rc = main([{str(photo)!r}, '--csv', {str(tmp_path / 'out.csv')!r}, '--lime-samples', '40', '-q'])\n"
        "print('RC', rc, 'TF', 'tensorflow' in sys.modules, 'KERAS', 'keras' in sys.modules)\n"
    ).replace("main([", "main(['run', ")
    done = _script(body)
    assert "RC 0 TF False KERAS False" in done.stdout, done.stdout + done.stderr
    import csv

    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert any(r["status"] == "ok" and r["label"] and r["lime_label"] == r["label"] for r in rows), rows
    noisy = [line for line in done.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, noisy


def test_the_keras_path_is_the_fallback_and_can_be_forced(untrained_model_path):
    m = load_model(untrained_model_path, runtime="keras")
    assert m.runtime == "keras" and m.keras_model is not None
    with pytest.raises(ModelError, match="BATCHEMO_RUNTIME.*auto, litert, keras"):
        load_model(untrained_model_path, runtime="onnx")
    done = _script("import batchemo.core.runtime as rt, sys\nrt._litert_interpreter.cache_clear()\n"
                   "rt._litert_interpreter = lambda: None\n"
                   "from batchemo.emotions.model import load_model\nm = load_model()\nprint('RUNTIME', m.runtime)")
    assert "RUNTIME keras" in done.stdout, done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("batchemo:")]
    assert said == ["batchemo: LiteRT (ai-edge-litert) is not installed here: the model runs on TensorFlow"]


def test_own_keras_file_is_converted_once_beside_it(untrained_model_path, tmp_path, capsys):
    path = tmp_path / "mine.keras"
    shutil.copy(untrained_model_path, path)
    shutil.copy(ModelCard.path_for(untrained_model_path), ModelCard.path_for(path))
    m = load_model(path)
    assert m.runtime == "litert" and all(p.exists() for p in beside(path).values())
    assert f"mine.keras: converted to TensorFlow Lite once, cached beside it, in {tmp_path}" in capsys.readouterr().err
    assert ModelCard.load(path).export["keras_sha256"] == digest(path)
    faces = np.random.default_rng(0).integers(0, 255, (6, 48, 48), dtype=np.uint8)
    keras_probs = load_model(path, runtime="keras").predict(faces)
    np.testing.assert_allclose(m.predict(faces), keras_probs, atol=1e-4)
    stamp = beside(path)["float32"].stat().st_mtime_ns
    load_model(path)  # found, not converted again
    assert beside(path)["float32"].stat().st_mtime_ns == stamp and "converted" not in capsys.readouterr().err


def test_stale_flatbuffers_are_never_run(untrained_model_path, tmp_path):
    """Flatbuffers beside a .keras file that has since changed (retrained) are converted again."""
    import keras

    path = tmp_path / "mine.keras"
    shutil.copy(untrained_model_path, path)
    first = load_model(path)
    faces = np.random.default_rng(2).integers(0, 255, (4, 48, 48), dtype=np.uint8)
    km = keras.saving.load_model(path, compile=False)
    km.set_weights([w * 1.5 for w in km.get_weights()])  # "retrained": the same file name, other weights
    km.save(path)
    again = load_model(path)
    assert ModelCard.load(path).export["keras_sha256"] == digest(path)
    np.testing.assert_allclose(again.predict(faces), load_model(path, runtime="keras").predict(faces), atol=1e-4)
    assert not np.allclose(again.predict(faces), first.predict(faces), atol=1e-4)


def test_read_only_folder_caches_in_the_user_cache(untrained_model_path, tmp_path, monkeypatch, capsys):
    if os.geteuid() == 0:
        monkeypatch.setattr(os, "access", lambda p, mode: False)  # root writes anywhere: say it cannot
    ro = tmp_path / "ro"
    ro.mkdir()
    path = ro / "theirs.keras"
    shutil.copy(untrained_model_path, path)
    os.chmod(ro, 0o555)
    monkeypatch.setenv("BATCHEMO_CACHE", str(tmp_path / "cache"))
    try:
        m = load_model(path)
    finally:
        os.chmod(ro, 0o755)
    assert m.runtime == "litert" and not beside(path)["float32"].exists()
    assert sorted(p.name.split(".", 1)[1] for p in (tmp_path / "cache" / "tflite").iterdir()) == [
        "card.json", "float32.tflite", "int8.tflite"]
    assert f"cached in {tmp_path / 'cache' / 'tflite'}" in capsys.readouterr().err
    assert m.card.architecture == "default"  # the card made for a model that came without one


def test_interpreter_pool_is_thread_safe(default_model):
    faces = np.random.default_rng(1).random((96, 48, 48, 1), dtype=np.float32)
    want = default_model.int8(faces)
    got, errors = {}, []

    def work(k):
        try:
            for _ in range(5):
                got[k] = default_model.int8(faces)
        except Exception as e:  # pragma: no cover - a failure is what the test looks for
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 4
    for v in got.values():
        np.testing.assert_array_equal(v, want)
    assert 2 <= default_model.int8.inner.built <= 5  # interpreters are pooled, not made per call


@pytest.mark.slow
def test_litert_labels_are_the_keras_labels_on_validation(default_model, fer_validation):
    """On all 3,589 validation faces, the LiteRT float32 labels are the Keras float path's on >= 99.5%."""
    from batchemo.emotions.model import load_keras
    from batchemo.sources.labelled import load_folder

    data = load_folder(fer_validation)
    assert len(data) == 3589
    lite, keras_probs = default_model.predict(data.images), load_keras().predict(data.images)
    assert (lite.argmax(1) == keras_probs.argmax(1)).mean() >= 0.995


@pytest.mark.parametrize("argv", [["train", "data", "--out", "m.keras"], ["export", "m.keras"]])
def test_train_and_export_without_tensorflow_name_the_extra(argv, monkeypatch, capsys, tmp_path):
    import importlib.util

    from batchemo.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs TensorFlow" in err[0] and "pip install 'batchemo[train]'" in err[0], err


def test_jobs_default_to_what_pays():
    from batchemo.pipeline.engine import auto_jobs

    assert auto_jobs(1, cores=2) == auto_jobs(31, cores=2) == 1 and auto_jobs(10_000, cores=2) == 2
    assert auto_jobs(5, cores=16) == 1 and auto_jobs(10_000, cores=1) == 1  # a handful, or one core: in process
    assert auto_jobs(1000, cores=8) == 8 and auto_jobs(40, cores=8) == 2 and auto_jobs(10**6, cores=64) == 8


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_the_command_line_bounds_the_heap_unless_the_user_set_malloc(tmp_path):
    """``core.heap.bound_heap`` (what keeps an hour of video at the memory of five minutes) applies on glibc,
    and leaves the heap alone when the user set a MALLOC_* variable; in a fresh process each time."""
    code = "from batchemo.core.heap import bound_heap; print(bound_heap())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "True", out.stderr
    env["MALLOC_ARENA_MAX"] = "4"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "False", out.stderr
