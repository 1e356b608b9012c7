"""Training and evaluation on tiny generated datasets (folder layout and fer2013.csv): runs, checkpoints,
resumes, evaluates; bad data gets clear errors."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from batchemo.emotions.evaluate import evaluate
from batchemo.emotions.model import CLASSES, EmotionModel, ModelCard, load_model
from batchemo.sources.labelled import FER2013_CSV_ORDER, DatasetError, load_csv, load_split
from batchemo.training import Recipe, TrainingError, checkpoint_dir, train

from .conftest import copy_run, write_image


def _faces(lfw_faces, n):
    import cv2

    return [cv2.resize(f, (48, 48)) for f in lfw_faces[:n]]


@pytest.fixture
def folder_dataset(tiny_dataset):
    """conftest's tiny train/ + validation/ set: 6 and 2 real faces per class, class names in mixed case."""
    return tiny_dataset


def _tiny_recipe(epochs=2):
    return Recipe(arch="default", epochs=epochs, batch_size=16, lr=1e-3, patience=50)


@pytest.fixture(scope="module")
def resumed_run(trained_run, tiny_dataset, tmp_path_factory):
    """A copy of the session's 2-epoch run resumed to 3 epochs: (model path, the resume's log lines)."""
    out = copy_run(trained_run, tmp_path_factory.mktemp("resumed"))
    logs = []
    train(tiny_dataset, out, recipe=Recipe(epochs=3), resume=True, log=logs.append)
    return out, logs


@pytest.mark.training
def test_train_checkpoints_and_measures_its_card(trained_run, tiny_dataset):
    """The run leaves its resumable checkpoint, history and curves, and a card whose figures are the
    model's own on the validation split."""
    from batchemo.emotions.calibration import probabilities_ece
    from batchemo.emotions.evaluate import evaluate

    ckpt = checkpoint_dir(trained_run)
    for name in ("last.keras", "best.weights.h5", "state.json", "average.weights.h5"):
        assert (ckpt / name).exists(), name
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 2 and len(state["history"]) == 2
    hist = pd.read_csv(trained_run.with_name("m.history.csv"))
    assert list(hist["epoch"]) == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(hist.columns)
    assert trained_run.with_name("m.curves.png").read_bytes()[:4] == b"\x89PNG"
    card = ModelCard.load(trained_run)
    assert card.classes == list(CLASSES) and card.architecture == "default" and card.epochs in (1, 2)
    model = load_model(trained_run)
    ev = evaluate(model, load_split(tiny_dataset, "validation"))
    assert len(ev.labels) == 2 * len(CLASSES)
    assert card.validation_accuracy == round(ev.accuracy, 4) == card.validation_accuracy_tta[card.preprocessing["tta"]]
    assert card.per_class_f1 == {c: round(f, 4) for c, f in ev.per_class_f1().items()}
    assert card.macro_f1 == round(ev.macro_f1, 4)
    assert card.ece == round(probabilities_ece(ev.probabilities, ev.labels), 4)
    # trained on FER+-style votes (tests/conftest.tiny_votes): calibrated on them, measured against them
    assert card.recipe["votes"].endswith("votes.csv") and card.recipe["unreadable"] == 0.2
    assert 0.25 <= card.calibration["temperature"] <= 4 and model.temperature == card.calibration["temperature"]
    f = card.ferplus
    assert f["faces"] == f["majority_faces"] == 2 * len(CLASSES) and f["majority_accuracy"] == card.validation_accuracy
    assert f["floor"] == pytest.approx(-(0.7 * np.log(0.7) + 3 * 0.1 * np.log(0.1)), abs=1e-3)
    assert f["cross_entropy"] >= f["floor"] and f["fer2013_accuracy"] == card.validation_accuracy


@pytest.mark.training
def test_resume_continues_the_run(resumed_run):
    out, logs = resumed_run
    state = json.loads((checkpoint_dir(out) / "state.json").read_text())
    assert state["epoch"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert any("resuming from epoch 2" in line for line in logs)
    assert load_model(out).classes == CLASSES


@pytest.mark.training
def test_cli_evaluates_a_trained_model(trained_run, tiny_dataset, tmp_path, capsys):
    """``batchemo evaluate`` on a trained model writes its CSVs and PNG (in-process: no second TF start-up)."""
    from batchemo.cli import main

    prefix = tmp_path / "ev"
    assert main(["evaluate", str(tiny_dataset), "--model", str(trained_run), "--out", str(prefix)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy:" in printed and "macro avg" in printed
    preds = pd.read_csv(str(prefix) + ".predictions.csv")
    assert len(preds) == 2 * len(CLASSES)
    assert list(preds.columns[:4]) == ["path", "true_label", "predicted_label", "confidence"]
    assert (tmp_path / "ev.confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_without_checkpoint_is_a_clear_error(folder_dataset, tmp_path):

    with pytest.raises(TrainingError, match="nothing to resume"):
        train(folder_dataset, tmp_path / "x.keras", resume=True)
    # a checkpoint without its last model (half copied, say) is not trained again from scratch over it
    ckpt = checkpoint_dir(tmp_path / "x.keras")
    ckpt.mkdir()
    (ckpt / "state.json").write_text(json.dumps({"recipe": dataclasses.asdict(Recipe(epochs=1)), "epoch": 1}))
    with pytest.raises(TrainingError, match="last.keras: missing, so the run .* cannot resume"):
        train(folder_dataset, tmp_path / "x.keras", resume=True)
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 1


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


@pytest.mark.training
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

    from batchemo.training.pipeline import augment

    x = tf.random.uniform((8, 48, 48, 1))
    y = augment(x, Recipe(), 0).numpy()
    assert y.shape == (8, 48, 48, 1)
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert not np.allclose(y, x.numpy())


# ---------------------------------------------------------------- issue 13: recipes, distillation, card
def test_default_macs_counted_by_hand():
    from batchemo.training import build, count_macs

    # 3x3 'same' convs: out_h * out_w * 9 * in_channels * out_channels; then the 256 -> 7 dense layer.
    by_hand = (
        48 * 48 * 9 * 1 * 32
        + 24 * 24 * 9 * 32 * 64
        + 12 * 12 * 9 * 64 * 128
        + 12 * 12 * 9 * 128 * 128
        + 6 * 6 * 9 * 128 * 256
        + 6 * 6 * 9 * 256 * 256
        + 256 * 7
    )
    assert by_hand == 74_983_168
    assert count_macs(build("default")) == by_hand
    # the teacher architecture: 192 and 384 wide at 12x12 and 6x6
    wide = (48 * 48 * 9 * 32 + 24 * 24 * 9 * 32 * 64 + 12 * 12 * 9 * (64 * 192 + 192 * 192)
            + 6 * 6 * 9 * (192 * 384 + 384 * 384) + 384 * 7)
    assert count_macs(build("wide")) == wide


def _loss(recipe_alpha=0.0, temperature=1.0):
    from batchemo.training.loss import register

    DistillLoss, _ = register()
    return DistillLoss(recipe_alpha, temperature)


def test_label_smoothing_targets_and_loss():
    from batchemo.training.pipeline import targets

    labels = np.array([0, 3])
    t = targets(np.eye(7)[labels], Recipe(label_smoothing=0.1)).numpy()
    assert t.shape == (2, 14) and np.allclose(t[:, 7:], 0)
    assert np.isclose(t[0, 0], 0.9 + 0.1 / 7) and np.isclose(t[0, 1], 0.1 / 7) and np.allclose(t[:, :7].sum(1), 1)
    pred = np.full((2, 7), 0.01, np.float32)
    pred[0, 0] = pred[1, 3] = 0.94
    loss = _loss()
    plain = float(loss(targets(np.eye(7)[labels], Recipe()), pred))
    smooth = float(loss(t, pred))
    assert np.isclose(plain, -np.log(0.94), atol=1e-5)
    # smoothing puts 0.1 of the target on the mean log-probability over all 7 classes: the loss rises
    expected = 0.9 * -np.log(0.94) + 0.1 * -np.mean(np.log(pred[0]))
    assert np.isclose(smooth, expected, atol=1e-4) and smooth > plain + 0.3


def test_mixup_mixes_faces_and_targets_alike():
    import tensorflow as tf

    from batchemo.training.pipeline import mix_batch, targets

    tf.random.set_seed(0)
    x = np.random.default_rng(0).random((6, 48, 48, 1)).astype(np.float32)
    y = targets(np.eye(7)[np.arange(6)], Recipe())
    xm, ym, lam = (v.numpy() for v in mix_batch(x, y, Recipe(mixup=0.4)))
    assert 0.0 < lam < 1.0
    assert np.allclose(xm, lam * x + (1 - lam) * x[::-1], atol=1e-6)
    assert np.allclose(ym[:, :7].sum(1), 1.0) and np.isclose(ym[0, 0], lam) and np.isclose(ym[0, 5], 1 - lam)
    # the mixed target costs more than the pure label for a confident prediction of the first face's class
    pred = np.full((6, 7), 0.01, np.float32)
    pred[np.arange(6), np.arange(6)] = 0.94
    assert float(_loss()(ym, pred)) > float(_loss()(y, pred)) + 0.1
    # mix probability 0: the batch passes through unchanged
    x0, y0, lam0 = (v.numpy() for v in mix_batch(x, y, Recipe(mixup=0.4, mix_prob=0.0)))
    assert lam0 == 1.0 and np.array_equal(x0, x) and np.allclose(y0, y.numpy())


def test_cutmix_pastes_a_box_and_weights_by_area():
    from batchemo.training.pipeline import mix_batch, targets

    x = np.zeros((4, 48, 48, 1), np.float32)
    x[2:] = 1.0  # faces 0-1 black, 2-3 white: a pixel's value says where it came from
    y = targets(np.eye(7)[[0, 1, 2, 3]], Recipe())
    import tensorflow as tf

    for seed in range(3):
        tf.random.set_seed(seed)
        xm, ym, lam = (v.numpy() for v in mix_batch(x, y, Recipe(cutmix=1.0)))
        assert set(np.unique(xm)) <= {0.0, 1.0}
        pasted = xm[0].mean()  # face 0 is black; its partner (face 3) is white
        assert np.isclose(1 - pasted, lam, atol=1e-6) and np.isclose(ym[0, 0], lam) and np.isclose(ym[0, 3], 1 - lam)


def test_distill_loss_is_kl_to_tempered_teacher():
    pred = np.array([[0.7, 0.1, 0.05, 0.05, 0.04, 0.03, 0.03]], np.float32)
    hard = np.eye(7, dtype=np.float32)[[0]]
    teacher = np.array([[0.5, 0.3, 0.05, 0.05, 0.04, 0.03, 0.03]], np.float32)
    # the student equal to the teacher: only the hard term, weighted 1 - alpha
    same = float(_loss(0.8, 3.0)(np.concatenate([hard, pred], 1), pred))
    assert np.isclose(same, 0.2 * -np.log(0.7), atol=1e-4)

    def tempered(p, t):
        q = p ** (1 / t)
        return q / q.sum()

    t = 3.0
    pt, ps = tempered(teacher[0], t), tempered(pred[0], t)
    kl = float(np.sum(pt * np.log(pt / ps))) * t * t
    got = float(_loss(0.8, t)(np.concatenate([hard, teacher], 1), pred))
    assert np.isclose(got, 0.2 * -np.log(0.7) + 0.8 * kl, atol=1e-4)
    # rows without teacher probabilities (validation) get the plain cross-entropy
    none = float(_loss(0.8, t)(np.concatenate([hard, np.zeros_like(teacher)], 1), pred))
    assert np.isclose(none, -np.log(0.7), atol=1e-5)


def test_expected_calibration_error():
    from batchemo.emotions.calibration import probabilities_ece as expected_calibration_error

    labels = np.array([0, 0, 0, 0])
    calibrated = np.tile([[0.75, 0.25]], (4, 1))  # 75% confident, 3 of 4 right
    assert np.isclose(expected_calibration_error(calibrated, np.array([0, 0, 0, 1])), 0.0)
    overconfident = np.tile([[0.99, 0.01]], (4, 1))  # 99% confident, half right
    assert np.isclose(expected_calibration_error(overconfident, np.array([0, 1, 0, 1])), 0.49)
    assert expected_calibration_error(overconfident, labels) < 0.011


@pytest.fixture(scope="module")
def distilled_run(tiny_dataset, tmp_path_factory):
    """A 1-epoch distillation run taught by the shipped model and an untrained one (SGD + Nesterov, mixup,
    label smoothing): (model path, the two teachers' paths). Tests resume or change copies of it."""
    import keras

    from batchemo.emotions.model import DEFAULT_MODEL_PATH
    from batchemo.training import build

    root = tmp_path_factory.mktemp("distilled")
    shipped = root / "teachers" / "shipped.keras"
    shipped.parent.mkdir()
    shipped.write_bytes(DEFAULT_MODEL_PATH.read_bytes())
    untrained = root / "teachers" / "untrained.keras"
    keras.utils.set_random_seed(3)
    build("default").save(untrained)
    out = root / "run" / "student.keras"
    out.parent.mkdir()
    recipe = Recipe(epochs=1, batch_size=16, patience=50, optimizer="sgd-nesterov", lr=0.01, mixup=0.2,
                    label_smoothing=0.05, teachers=[str(shipped), str(untrained)], distill_alpha=0.7)
    train(tiny_dataset, out, recipe=recipe, log=lambda m: None)
    return out, shipped, untrained


@pytest.mark.training
def test_distillation_runs_resumes_and_fills_the_card(distilled_run, folder_dataset, tmp_path):
    import keras

    run, shipped, untrained = distilled_run
    out = copy_run(run, tmp_path)
    logs = []
    ckpt = checkpoint_dir(out)
    state = json.loads((ckpt / "state.json").read_text())
    assert [t["file"] for t in state["teachers"]] == ["shipped.keras", "untrained.keras"]

    # the cached soft targets are the mean of the two teachers' flip-TTA probabilities, train faces in order
    probs = np.load(ckpt / "teacher_probs.npy")
    train_set = load_split(folder_dataset, "train")
    expected = 0.5 * (load_model(shipped).predict(train_set.images) + load_model(untrained).predict(train_set.images))
    assert np.allclose(probs, expected, atol=1e-4)

    # resume: same recipe from the state, cached targets, optimizer state kept
    train(folder_dataset, out, recipe=Recipe(epochs=2), resume=True, log=logs.append)
    assert any("resuming from epoch 1" in m for m in logs) and any("cached soft targets" in m for m in logs)
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 2 and state["recipe"]["teachers"] == [str(shipped), str(untrained)]
    assert state["recipe"]["optimizer"] == "sgd-nesterov" and state["recipe"]["distill_alpha"] == 0.7
    last = keras.saving.load_model(ckpt / "last.keras")
    steps = -(-len(train_set) // 16)
    assert int(last.optimizer.iterations) == 2 * steps and last.optimizer.nesterov

    card = json.loads(ModelCard.path_for(out).read_text())
    assert card["macs"] == 74_983_168 and card["parameters"] == 1_129_895
    assert [t["file"] for t in card["teachers"]] == ["shipped.keras", "untrained.keras"]
    # each teacher's accuracy is its own on the validation split, read its way (the flip)
    val_set = load_split(folder_dataset, "validation")
    for t, path in zip(card["teachers"], (shipped, untrained)):
        teacher = load_model(path)
        teacher.tta = "hflip"
        assert t["validation_accuracy"] == round(evaluate(teacher, val_set).accuracy, 4) and t["tta"] == "hflip"
    assert card["recipe"]["teachers"] == ["shipped.keras", "untrained.keras"]  # names, not paths
    assert card["training_data"] == folder_dataset.name + "/"
    assert str(tmp_path) not in ModelCard.path_for(out).read_text()
    assert str(run.parent.parent) not in ModelCard.path_for(out).read_text()


@pytest.mark.training
def test_consistent_teaching_judges_each_view_the_student_sees(folder_dataset, tmp_path):
    from batchemo.emotions.model import DEFAULT_MODEL_PATH
    from batchemo.training.pipeline import datasets
    from batchemo.training.teachers import teacher_views

    out = tmp_path / "student.keras"
    recipe = Recipe(arch="default", tta="none", epochs=1, batch_size=16, teachers=[str(DEFAULT_MODEL_PATH)],
                    teacher_views=3, distill_alpha=0.7, distill_temperature=2.0, teacher_tta="auto")
    logs = []
    train(folder_dataset, out, recipe=recipe, log=logs.append)
    ckpt = checkpoint_dir(out)
    train_set = load_split(folder_dataset, "train")
    views, probs = np.load(ckpt / "teacher_views.npy"), np.load(ckpt / "teacher_probs.npy")
    assert views.shape == (len(train_set), 3, 48, 48) and views.dtype == np.uint8
    # three different affine versions of each face, seeded: the same ones again from the recipe
    assert (not np.array_equal(views[:, 0], views[:, 1])
            and np.array_equal(views, teacher_views(train_set.images, recipe)))
    # the teachers' verdict is on each view itself, not on the face as it is; "auto": a mirror-symmetric
    # teacher reads it with two turns (the shipped card's own way)
    assert json.loads((ckpt / "state.json").read_text())["teachers"][0]["tta"] == "rot5"
    teacher = load_model(DEFAULT_MODEL_PATH)
    teacher.tta = "rot5"
    assert probs.shape == (len(train_set), 3, 7)
    assert np.allclose(probs[:, 1], teacher.predict(views[:, 1]), atol=1e-4)
    assert not np.allclose(probs[:, 1], teacher.predict(train_set.images), atol=1e-3)

    # every face the student sees is one of its views (or that view's mirror) with that view's targets
    tr, _ = datasets(train_set, train_set, recipe, probs, views)
    table = {}
    for i in range(len(train_set)):
        for j in range(3):
            for v in (views[i, j], views[i, j, :, ::-1]):
                table[v.tobytes()] = probs[i, j]
    seen = 0
    for x, y in tr:
        for face, target in zip(np.rint(x.numpy()[..., 0] * 255).astype(np.uint8), y.numpy()):
            assert np.allclose(target[7:], table[face.tobytes()], atol=1e-6)
            seen += 1
    assert seen == len(train_set)

    # a resume reads the cache: no second pass of the teachers
    from batchemo.training import TrainState
    from batchemo.training.teachers import teacher_targets

    state = TrainState.load(ckpt / "state.json")
    logs = []
    cached_probs, cached_views = teacher_targets(recipe, train_set, load_split(folder_dataset, "validation"), ckpt,
                                                 state, logs.append)
    assert np.array_equal(cached_probs, probs) and np.array_equal(cached_views, views)
    assert any("cached soft targets" in m and "3 views" in m for m in logs) and not any("teacher " in m for m in logs)
    with pytest.raises(TrainingError, match="teacher views need"):
        train(folder_dataset, tmp_path / "s.keras", recipe=Recipe(teacher_views=2))


def test_bad_recipe_options_are_clear_errors(folder_dataset, tmp_path):

    with pytest.raises(TrainingError, match="teacher model not found"):
        train(folder_dataset, tmp_path / "s.keras", recipe=Recipe(teachers=[str(tmp_path / "nope.keras")]))
    with pytest.raises(TrainingError, match="unknown optimizer"):
        train(folder_dataset, tmp_path / "s.keras", recipe=Recipe(optimizer="rmsprop"))
    with pytest.raises(TrainingError, match="label smoothing"):
        train(folder_dataset, tmp_path / "s.keras", recipe=Recipe(label_smoothing=1.5))


def test_cli_builds_the_distill_recipe(tmp_path, monkeypatch):
    from batchemo import cli

    seen = {}
    import sys

    # the CLI calls batchemo.training.train when it runs: patch it there
    monkeypatch.setattr(sys.modules["batchemo.training"], "train",
                        lambda data, out, recipe, resume, log, tta=None: seen.update(recipe=recipe))
    monkeypatch.chdir(tmp_path)  # the CLI checks its inputs before any work: give it real ones
    (tmp_path / "data").mkdir()
    for teacher in ("a.keras", "b.keras"):
        (tmp_path / teacher).write_bytes(b"")
    args = cli.build_parser().parse_args(
        ["train", "data", "--out", "s.keras", "--teacher", "a.keras", "b.keras", "--distill-alpha", "0.5",
         "--distill-temperature", "2", "--label-smoothing", "0.1", "--cutmix", "1", "--optimizer", "sgd-nesterov"])
    assert args.func(args) == 0
    r = seen["recipe"]
    assert r.arch == "default" and r.tta == "hflip" and r.epochs == Recipe.named("distill").epochs  # the shipped arch
    assert r.teachers == ["a.keras", "b.keras"] and r.distill_alpha == 0.5 and r.distill_temperature == 2.0
    assert r.label_smoothing == 0.1 and r.cutmix == 1.0 and r.optimizer == "sgd-nesterov"
    args = cli.build_parser().parse_args(["train", "data", "--out", "t.keras", "--recipe", "teacher"])
    args.func(args)
    assert seen["recipe"].arch == "wide" and seen["recipe"].optimizer == "sgd-nesterov"
    # a mirror-symmetric student reads faces as two turns unless told otherwise (its flip is its one pass)
    args = cli.build_parser().parse_args(["train", "data", "--out", "m.keras", "--arch", "mirror",
                                          "--teacher", "a.keras"])
    args.func(args)
    assert seen["recipe"].arch == "mirror" and seen["recipe"].tta == "rot5" and seen["recipe"].teachers == ["a.keras"]
    assert seen["recipe"].teacher_tta == "hflip"
    args = cli.build_parser().parse_args(["train", "data", "--out", "m.keras", "--arch", "mirror", "--teacher",
                                          "a.keras", "--teacher-tta", "auto", "--tta", "none"])
    args.func(args)
    assert seen["recipe"].teacher_tta == "auto" and seen["recipe"].tta == "none"
    assert seen["recipe"].teacher_views == 0
    args = cli.build_parser().parse_args(["train", "data", "--out", "m.keras", "--recipe", "mirror", "--teacher",
                                          "a.keras", "b.keras", "--teacher-views", "8", "--epochs", "50"])
    args.func(args)
    assert seen["recipe"].teacher_views == 8 and seen["recipe"].teachers == ["a.keras", "b.keras"]
    assert seen["recipe"].arch == "mirror" and seen["recipe"].epochs == 50
    # no --arch, no --recipe: the default recipe (the shipped model's first teacher)
    args = cli.build_parser().parse_args(["train", "data", "--out", "m.keras"])
    args.func(args)
    assert seen["recipe"] == Recipe.named("default")
    args = cli.build_parser().parse_args(["train", "data", "--out", "m.keras", "--recipe", "mirror"])
    args.func(args)
    assert seen["recipe"] == Recipe.named("mirror") and seen["recipe"].patience >= seen["recipe"].epochs


@pytest.mark.training
def test_init_weights_and_a_card_that_reads_one_pass(folder_dataset, tmp_path, untrained_model_path):
    """--init: the first epoch starts from that model's weights; --tta none: chosen and carded without TTA."""
    import keras

    from batchemo.emotions.model import DEFAULT_MODEL_PATH

    out = tmp_path / "ft.keras"
    logs = []
    recipe = Recipe(epochs=1, batch_size=16, optimizer="sgd-nesterov", lr=0.0, tta="none",  # lr 0: no move
                    init=str(untrained_model_path), teachers=[str(DEFAULT_MODEL_PATH)])
    train(folder_dataset, out, recipe=recipe, log=logs.append)
    assert any("starting from the weights of untrained.keras" in m for m in logs)
    start = keras.saving.load_model(untrained_model_path, compile=False).get_weights()
    got = keras.saving.load_model(out, compile=False).get_weights()
    # convolution and dense weights unchanged at lr 0 (batch-norm moving statistics do move in training)
    kernels = [i for i, w in enumerate(start) if w.ndim >= 2]
    assert all(np.array_equal(start[i], got[i]) for i in kernels)
    card = json.loads(ModelCard.path_for(out).read_text())
    assert card["preprocessing"]["tta"] == "none" and card["recipe"]["init"] == "untrained.keras"
    assert set(card["validation_accuracy_tta"]) == {"none", "hflip", "rot5", "turns"}
    assert card["validation_accuracy"] == card["validation_accuracy_tta"]["none"]
    # flip agreement: the share of validation faces whose one-pass label survives mirroring
    model, val = load_model(out), load_split(folder_dataset, "validation")
    one, mirrored = model.predict(val.images), model.predict(np.ascontiguousarray(val.images[:, :, ::-1]))
    assert card["flip_agreement"] == round(float((one.argmax(1) == mirrored.argmax(1)).mean()), 4)
    assert load_model(out).tta == "none"  # every reader of the card takes one pass
    state = json.loads((checkpoint_dir(out) / "state.json").read_text())
    assert set(state["best_by_tta"]) == {"none", "hflip", "rot5"}
    for way in ("none", "hflip", "rot5"):
        assert (checkpoint_dir(out) / f"best-{way}.weights.h5").exists()
    # the finished run read the other way: written again from that way's best epoch, no training
    train(folder_dataset, out, resume=True, tta="hflip", log=logs.append)
    assert any("already trained for 1 epochs" in m for m in logs)
    card = json.loads(ModelCard.path_for(out).read_text())
    assert card["preprocessing"]["tta"] == "hflip" and load_model(out).tta == "hflip"
    assert card["validation_accuracy"] == card["validation_accuracy_tta"]["hflip"]
    train(folder_dataset, out, resume=True, tta="rot5", log=logs.append)
    card = json.loads(ModelCard.path_for(out).read_text())
    assert card["preprocessing"]["tta"] == "rot5" and load_model(out).tta == "rot5"
    assert card["validation_accuracy"] == card["validation_accuracy_tta"]["rot5"]


def test_init_of_another_architecture_is_a_clear_error(folder_dataset, tmp_path, untrained_model_path):
    with pytest.raises(TrainingError, match="architecture 'default'"):
        train(folder_dataset, tmp_path / "w.keras",
              recipe=Recipe(arch="wide", epochs=1, init=str(untrained_model_path)))
    with pytest.raises(TrainingError, match="--init model not found"):
        train(folder_dataset, tmp_path / "w.keras", recipe=Recipe(init=str(tmp_path / "nope.keras")))


@pytest.mark.training
def test_mixed_bfloat16_training_saves_a_float32_model(folder_dataset, tmp_path, monkeypatch):
    import keras

    training = sys.modules[train.__module__]  # batchemo.training.loop, whose Checkpoint reads each epoch
    read_by = []  # the arithmetic of each network an epoch's validation read goes through
    real = training.tta_accuracy
    monkeypatch.setattr(training, "tta_accuracy", lambda model, *a, **k: (
        read_by.extend({layer.dtype_policy.name for layer in model.layers}), real(model, *a, **k))[1])
    out = tmp_path / "bf.keras"
    recipe = _tiny_recipe(1)
    recipe.precision = "mixed_bfloat16"
    train(folder_dataset, out, recipe=recipe, log=lambda m: None)
    assert read_by and set(read_by) == {"float32"}  # chosen on the reads the card will make
    assert keras.mixed_precision.global_policy().name == "float32"  # set back for whatever runs next
    last = keras.saving.load_model(checkpoint_dir(out) / "last.keras")
    assert any(layer.dtype_policy.name == "mixed_bfloat16" for layer in last.layers)
    km = load_model(out, runtime="keras").keras_model  # the Keras model itself
    assert all(layer.dtype_policy.name == "float32" for layer in km.layers)
    assert ModelCard.load(out).recipe["precision"] == "mixed_bfloat16"
    # the epoch was chosen on float32 reads, the card's: the kept weights read the same in both
    state = json.loads((checkpoint_dir(out) / "state.json").read_text())
    card = ModelCard.load(out)
    for way in ("none", "hflip"):
        assert state["best_by_tta"][way][0] == pytest.approx(card.validation_accuracy_tta[way], abs=1e-4)


@pytest.fixture(scope="module")
def mirror_run(tiny_dataset, tmp_path_factory):
    """``--recipe mirror --fit-read`` for 1 epoch, then resumed to 2 in a new interpreter (nothing registered
    there yet: the mirror layers must be before the checkpoint is read). Its model path."""
    out = tmp_path_factory.mktemp("mirror") / "mirror.keras"
    train(tiny_dataset, out, recipe=dataclasses.replace(Recipe.named("mirror"), epochs=1, batch_size=16,
                                                        fit_read=True), log=lambda m: None)
    r = subprocess.run(
        [sys.executable, "-c", "import sys; from batchemo.training import Recipe, train; "
         "train(sys.argv[1], sys.argv[2], recipe=Recipe(epochs=2), resume=True)", str(tiny_dataset), str(out)],
        capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.mark.training
def test_mirror_network_is_its_own_flip_average(mirror_run, folder_dataset, tmp_path):
    """--arch mirror: one pass gives the flip-averaged answer; it resumes in a fresh process (its custom
    layers registered before the checkpoint is read: ``mirror_run``) and ships as plain layers at default's
    cost; --init starts from its checkpoint's weights, or from the shipped file unfolded."""
    import keras

    from batchemo.training import build, count_macs

    out = copy_run(mirror_run, tmp_path / "run")  # this test removes the checkpoint folder below
    assert json.loads((checkpoint_dir(out) / "state.json").read_text())["epoch"] == 2
    model = load_model(out)
    assert model.tta == "rot5" and model.card.architecture == "mirror"  # its second pass: two turns, not a flip
    km = keras.saving.load_model(out, compile=False)
    assert {type(layer).__module__.split(".")[0] for layer in km.layers} == {"keras"}  # no custom layer ships
    assert count_macs(km) == count_macs(build("default"))
    faces = np.random.default_rng(0).integers(0, 256, (12, 48, 48), dtype=np.uint8)
    x, xm = faces[..., None] / np.float32(255), np.ascontiguousarray(faces[:, :, ::-1, None]) / np.float32(255)
    one = model.predict_scaled(x, tta=False)
    assert np.abs(one - model.predict_scaled(xm, tta=False)).max() < 1e-5
    assert np.abs(model.predict_scaled(x, tta=True) - one).max() < 1e-5
    turned = model.predict(faces)  # the two-turn read is mirror-symmetric too, and not the one pass
    assert np.abs(turned - model.predict(np.ascontiguousarray(faces[:, :, ::-1]))).max() < 1e-4
    assert np.abs(turned - one).max() > 1e-4
    card = ModelCard.load(out)
    assert card.validation_accuracy_tta["none"] == card.validation_accuracy_tta["hflip"]
    assert card.flip_agreement == 1.0
    # --init from a mirror model: the trainable weights its run kept, not the shipped plain layers
    # --init from a mirror model: the trainable weights its run kept for the card's way, exactly
    from batchemo.training.loop import _init_weights

    train_faces = load_split(folder_dataset, "train").images
    init = dataclasses.replace(Recipe.named("mirror"), init=str(out))
    start = build("mirror")
    start.load_weights(checkpoint_dir(out) / "best-rot5.weights.h5")  # the epoch the card reads: its way
    got = _init_weights(init, train_faces, log=lambda m: None)
    assert len(got) == len(start.get_weights()) and all(np.array_equal(b, a) for b, a in zip(start.get_weights(), got))
    # without that folder (a shipped file): the plain layers unfolded into a mirror network computing the same
    # function (batch norm's statistics measured on the training faces, gamma and beta set to undo them)
    from batchemo.training.mirror import plain_copy

    shutil.rmtree(checkpoint_dir(out))
    logs = []
    unfolded = build("mirror")
    unfolded.set_weights(_init_weights(init, train_faces, log=logs.append))
    assert any("unfolding the shipped layers" in m for m in logs)
    again = EmotionModel(plain_copy(unfolded), model.card)
    assert np.abs(again.predict(faces) - turned).max() < 1e-4
    plain = tmp_path / "plain.keras"
    build("default").save(plain)  # a file that is no mirror model, but carded as one
    ModelCard(architecture="mirror").save(plain)
    with pytest.raises(TrainingError, match="plain.keras: .*not a mirror model"):
        train(folder_dataset, tmp_path / "ft3.keras", recipe=dataclasses.replace(Recipe.named("mirror"), epochs=1,
                                                                                 init=str(plain)), log=lambda m: None)


def test_teachers_read_as_their_architecture_allows():
    from batchemo.training.teachers import teacher_way

    # a mirror-symmetric teacher's flip is its one pass: "auto" and "turns" read it with turns instead
    assert ([teacher_way(Recipe(teacher_tta=t), "mirror") for t in ("hflip", "auto", "turns")]
            == ["hflip", "rot5", "turns"])
    assert {teacher_way(Recipe(teacher_tta=t), "default") for t in ("hflip", "auto", "turns")} == {"hflip"}
    with pytest.raises(TrainingError, match="unknown teacher reading 'five'.*hflip, auto, turns"):
        Recipe(teacher_tta="five").validate()


@pytest.mark.training
def test_fitting_the_read_trains_on_the_mean_of_its_views(mirror_run):
    """--fit-read: training's views are tta.views' pixels, the loss reads their mean, the run resumes, and
    the student alone ships; a read of one view is refused."""
    import keras
    import tensorflow as tf

    from batchemo.emotions import tta
    from batchemo.training import build, count_macs
    from batchemo.training.pipeline import read_model, read_views

    x = np.random.default_rng(0).random((5, 48, 48, 1), dtype=np.float32)
    for way in ("hflip", "rot5", "turns"):
        got, want = [v.numpy() for v in read_views(tf.constant(x), way)], tta.views(x, way)
        assert len(got) == len(want) == tta.passes(way)
        assert max(float(np.abs(g - w).max()) for g, w in zip(got, want)) < 1e-5
    net = build("default")
    both = read_model(net, "rot5")
    assert np.abs(both.predict(tta.views(x, "rot5"), verbose=0)
                  - tta.read(lambda b: net.predict(b, verbose=0), x, "rot5")).max() < 1e-5

    out = mirror_run
    state = json.loads((checkpoint_dir(out) / "state.json").read_text())
    assert state["epoch"] == 2 and state["recipe"]["fit_read"]
    # Keras's own validation pass went through the read: its accuracy is the two-turn one, every epoch
    assert all(row["val_accuracy"] == pytest.approx(row["val_accuracy_rot5"]) for row in state["history"])
    model = load_model(out)
    assert model.tta == "rot5" and model.card.recipe["fit_read"]
    assert count_macs(keras.saving.load_model(out, compile=False)) == count_macs(build("default"))
    for recipe in (Recipe(arch="mirror", tta="hflip", fit_read=True), Recipe(tta="none", fit_read=True)):
        with pytest.raises(TrainingError, match="fitting the read needs a read of two views or more"):
            recipe.validate()


@pytest.mark.training
def test_weight_averaging_keeps_the_running_mean_across_a_resume(trained_run, resumed_run):
    """--average-from: from that epoch on, average.weights.h5 is the mean of every epoch's weights (a resume
    carries it on), each way reads it, and the card says when the kept weights are an average."""
    import keras

    from batchemo.training import build

    out, _ = resumed_run
    ckpt = checkpoint_dir(out)
    second = keras.saving.load_model(checkpoint_dir(trained_run) / "last.keras", compile=False).get_weights()
    third = keras.saving.load_model(ckpt / "last.keras", compile=False).get_weights()
    held = build("default")
    held.load_weights(ckpt / "average.weights.h5")
    assert all(np.allclose(a, (b + c) / 2, atol=1e-6) for a, b, c in zip(held.get_weights(), second, third))
    assert not np.allclose(second[0], third[0])  # the two epochs differ: the mean is not either
    state = json.loads((ckpt / "state.json").read_text())
    assert state["averaged"] == 2 and state["recipe"]["average_from"] == 2
    assert [("avg_val_accuracy_hflip" in row) for row in state["history"]] == [False, True, True]
    card = ModelCard.load(out)
    first = state["best_averaged"].get("hflip")
    assert card.weights_averaged == ([first, state["best_by_tta"]["hflip"][1]] if first else [])
    with pytest.raises(TrainingError, match="weight averaging starts at an epoch from 1 to --epochs"):
        Recipe(epochs=3, average_from=4).validate()


@pytest.mark.training
def test_a_run_stopped_before_its_first_epoch_ended_resumes_with_its_teachers_targets(distilled_run, folder_dataset,
                                                                                     tmp_path):
    """The teachers' pass is the first half hour of a distillation run: a stop before epoch 1 is saved keeps it."""
    out = copy_run(distilled_run[0], tmp_path)
    ckpt = checkpoint_dir(out)
    probs = np.load(ckpt / "teacher_probs.npy")
    # what a stop during the first epoch leaves: the cached targets and a state of epoch 0, no last.keras
    state = json.loads((ckpt / "state.json").read_text())
    (ckpt / "last.keras").unlink()
    (ckpt / "state.json").write_text(json.dumps({**state, "epoch": 0, "history": [], "best_epoch": 0}))
    logs = []
    train(folder_dataset, out, resume=True, log=logs.append)
    assert any("resuming before the first epoch ended" in m for m in logs)
    assert any("cached soft targets" in m for m in logs) and not any(m.startswith("teacher ") for m in logs)
    again = json.loads((ckpt / "state.json").read_text())
    assert again["epoch"] == 1 and again["teachers"] == state["teachers"]
    assert again["teacher_ensemble_accuracy"] == state["teacher_ensemble_accuracy"]
    assert np.array_equal(np.load(ckpt / "teacher_probs.npy"), probs)
