"""Training and evaluation on tiny generated datasets (folder layout and fer2013.csv): runs, checkpoints,
resumes, evaluates; bad data gets clear errors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from batchemo.datasets import DatasetError, load_csv, load_split
from batchemo.model import CLASSES, FER2013_CSV_ORDER, ModelCard, load_model
from batchemo.train import Recipe, checkpoint_dir, train

from .conftest import write_image

PER_CLASS = 6


def _faces(lfw_faces, n):
    import cv2

    return [cv2.resize(f, (48, 48)) for f in lfw_faces[:n]]


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory, lfw_faces):
    """train/ and validation/ with PER_CLASS real faces per class; class names in mixed case, 'natural'."""
    root = tmp_path_factory.mktemp("folder_ds")
    faces = _faces(lfw_faces, 100)
    names = {c: c for c in CLASSES} | {"neutral": "Natural", "happy": "HAPPY"}
    k = 0
    for split, n in (("train", PER_CLASS), ("validation", 2)):
        for c in CLASSES:
            for i in range(n):
                write_image(root / split / names[c] / f"{i}.jpg", faces[k % len(faces)])
                k += 1
    return root


def _tiny_recipe(epochs=2):
    return Recipe(arch="default", epochs=epochs, batch_size=16, lr=1e-3, patience=50)


def test_train_checkpoints_resumes_and_evaluates(folder_dataset, tmp_path):
    out = tmp_path / "m.keras"
    logs = []
    train(folder_dataset, out, recipe=_tiny_recipe(2), log=logs.append)
    ckpt = checkpoint_dir(out)
    for name in ("last.keras", "best.weights.h5", "state.json"):
        assert (ckpt / name).exists(), name
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 2 and len(state["history"]) == 2
    hist = pd.read_csv(tmp_path / "m.history.csv")
    assert list(hist["epoch"]) == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(hist.columns)
    assert (tmp_path / "m.curves.png").read_bytes()[:4] == b"\x89PNG"
    card = ModelCard.load(out)
    assert card.classes == list(CLASSES) and card.architecture == "default"
    assert 0.0 <= card.validation_accuracy <= 1.0 and set(card.per_class_f1) == set(CLASSES)

    # resume continues from epoch 2 to 3, keeping the history
    train(folder_dataset, out, recipe=Recipe(epochs=3), resume=True, log=logs.append)
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert any("resuming from epoch 2" in line for line in logs)
    model = load_model(out)
    assert model.classes == CLASSES

    # evaluate through the CLI, which writes its CSVs and PNG
    prefix = tmp_path / "ev"
    r = subprocess.run(
        [sys.executable, "-m", "batchemo.cli", "evaluate", str(folder_dataset), "--model", str(out), "--out", str(prefix)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "accuracy:" in r.stdout and "macro avg" in r.stdout
    preds = pd.read_csv(str(prefix) + ".predictions.csv")
    assert len(preds) == 2 * len(CLASSES)
    assert list(preds.columns[:4]) == ["path", "true_label", "predicted_label", "confidence"]
    assert (tmp_path / "ev.confusion.png").exists()


def test_resume_without_checkpoint_is_a_clear_error(folder_dataset, tmp_path):
    from batchemo.train import TrainingError

    with pytest.raises(TrainingError, match="nothing to resume"):
        train(folder_dataset, tmp_path / "x.keras", resume=True)


def _write_csv(path, faces, bad_line=None):
    rows = []
    for i, f in enumerate(faces):
        label = i % 7
        usage = "Training" if i % 4 else "PublicTest"
        pixels = " ".join(map(str, f.ravel()))
        if bad_line is not None and i + 2 == bad_line:
            pixels = " ".join(map(str, f.ravel()[:100]))
        rows.append((label, pixels, usage))
    pd.DataFrame(rows, columns=["emotion", "pixels", "Usage"]).to_csv(path, index=False)


def test_csv_dataset_maps_fer_order(tmp_path, lfw_faces):
    csv = tmp_path / "fer2013.csv"
    _write_csv(csv, _faces(lfw_faces, 56))
    train_set = load_split(csv, "train")
    val_set = load_split(csv, "validation")
    assert len(train_set) == 42 and len(val_set) == 14
    # row 0 has FER label 0 (angry), row 6 label 6 = neutral in FER's order
    full = load_csv(csv, None)
    assert CLASSES[full.labels[0]] == "angry"
    assert CLASSES[full.labels[6]] == FER2013_CSV_ORDER[6] == "neutral"
    assert CLASSES[full.labels[4]] == "sad"
    assert full.sources[0].endswith("fer2013.csv:2")


def test_csv_training_runs(tmp_path, lfw_faces):
    csv = tmp_path / "fer2013.csv"
    _write_csv(csv, _faces(lfw_faces, 56))
    out = train(csv, tmp_path / "c.keras", recipe=_tiny_recipe(1), log=lambda m: None)
    assert load_model(out).card.epochs == 1


def test_csv_row_with_wrong_pixel_count_names_the_row(tmp_path, lfw_faces):
    csv = tmp_path / "fer2013.csv"
    _write_csv(csv, _faces(lfw_faces, 20), bad_line=9)
    with pytest.raises(DatasetError, match=r"fer2013\.csv:9: 100 pixels, expected 2304"):
        load_csv(csv, None)


def test_unknown_class_folder(tmp_path, lfw_faces):
    write_image(tmp_path / "train" / "contempt" / "a.png", _faces(lfw_faces, 1)[0])
    with pytest.raises(DatasetError, match="contempt.*unknown class folder"):
        load_split(tmp_path, "train")


def test_empty_class_folder(tmp_path, lfw_faces):
    write_image(tmp_path / "happy" / "a.png", _faces(lfw_faces, 1)[0])
    (tmp_path / "sad").mkdir()
    with pytest.raises(DatasetError, match="'sad' has no images"):
        load_split(tmp_path, "validation")


def test_training_needs_every_class(tmp_path, lfw_faces):
    write_image(tmp_path / "train" / "happy" / "a.png", _faces(lfw_faces, 1)[0])
    with pytest.raises(DatasetError, match="no folder for class"):
        load_split(tmp_path, "train", require_all=True)


def test_corrupt_image_is_skipped_and_counted(tmp_path, lfw_faces):
    for i, f in enumerate(_faces(lfw_faces, 3)):
        write_image(tmp_path / "happy" / f"{i}.png", f)
    (tmp_path / "happy" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    data = load_split(tmp_path, "validation")
    assert len(data) == 3
    assert len(data.skipped) == 1 and data.skipped[0][0].endswith("broken.jpg")


def test_cli_errors_are_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "batchemo.cli", "train", str(tmp_path / "missing"), "--out", str(tmp_path / "m.keras")],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "missing: no such file or folder" in r.stderr


def test_augmentation_keeps_shape_and_range():
    import tensorflow as tf

    from batchemo.train import augment

    x = tf.random.uniform((8, 48, 48, 1))
    y = augment(x, Recipe(), 0).numpy()
    assert y.shape == (8, 48, 48, 1)
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert not np.allclose(y, x.numpy())
