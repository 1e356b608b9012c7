"""Shared fixtures: the ../shared data (skipped when absent), generated images, small models."""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from batchemo.core.records import CLASSES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BATCHEMO_SHARED", ROOT.parent / "shared"))


def pytest_collection_modifyitems(config, items):
    """``needs_shared`` on every test that reaches ../shared through a fixture (``shared`` or one built on
    it), so the marker cannot drift from what a test really reads: ``-m "not needs_shared"`` runs anywhere."""
    for item in items:
        if "shared" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.needs_shared)


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the project's ../shared data), which is absent here")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def photos(shared) -> Path:
    return _need(shared / "media" / "photos")


@pytest.fixture(scope="session")
def videos(shared) -> Path:
    return _need(shared / "media" / "videos")


@pytest.fixture(scope="session")
def fer_validation(shared, tmp_path_factory) -> Path:
    """FER2013's validation split (3,589 faces), unpacked once per test session."""
    archive = _need(shared / "datasets" / "fer2013.tar.gz")
    out = tmp_path_factory.mktemp("fer")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/validation/" in m.name or m.name.endswith("/validation")]
        tar.extractall(out, members=members, filter="data")
    return out / "fer2013" / "validation"


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def lfw_faces() -> np.ndarray:
    """100 real grayscale faces (25x25) from scikit-image, as uint8."""
    from skimage import data

    faces = data.lfw_subset()
    return (np.clip(faces, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def default_model():
    from batchemo.emotions.model import DEFAULT_MODEL_PATH, load_model

    if not DEFAULT_MODEL_PATH.exists():
        pytest.fail(f"the shipped model {DEFAULT_MODEL_PATH} is missing")
    return load_model()


@pytest.fixture(scope="session")
def untrained_model_path(tmp_path_factory) -> Path:
    """A real, untrained 'default' network saved with its card: for plumbing tests that need no accuracy."""
    import keras

    from batchemo.emotions.model import ModelCard
    from batchemo.training import build

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("models") / "untrained.keras"
    build("default").save(path)
    ModelCard(architecture="default", training_data="(untrained, for tests)").save(path)
    return path


def interruptible() -> None:
    """``Popen(preexec_fn=interruptible)``: SIGINT back to its default in the child, so that Python there
    turns Ctrl-C into KeyboardInterrupt. pytest-xdist's workers ignore SIGINT, and a child inherits that."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_image(path: Path, rgb: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    img = rgb[..., ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    assert cv2.imwrite(str(path), img), path
    return path


#: Faces per class in the tiny training set's train split (its validation split has 2 per class).
TINY_PER_CLASS = 6


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, lfw_faces) -> Path:
    """train/ and validation/ with real LFW faces (48x48), 6 and 2 per class; class folders in mixed case
    and the seed's 'Natural' for neutral, as a user's folders may be."""
    import cv2

    root = tmp_path_factory.mktemp("tiny_ds")
    faces = [cv2.resize(f, (48, 48)) for f in lfw_faces]
    names = {c: c for c in CLASSES} | {"neutral": "Natural", "happy": "HAPPY"}
    k = 0
    for split, n in (("train", TINY_PER_CLASS), ("validation", 2)):
        for c in CLASSES:
            for i in range(n):
                write_image(root / split / names[c] / f"{i}.jpg", faces[k % len(faces)])
                k += 1
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_dataset) -> Path:
    """One small model trained once per test session (default architecture, 2 epochs, weight averaging
    from epoch 2) on ``tiny_dataset``: its .keras file, with card, history, curves and checkpoint beside it.

    For the tests that need *a* trained model and its run. Read it; a test that resumes or changes the run
    works on ``copy_run(trained_run, tmp_path)``.
    """
    from batchemo.training import Recipe, train

    out = tmp_path_factory.mktemp("trained") / "m.keras"
    logs: list[str] = []
    train(tiny_dataset, out, recipe=Recipe(arch="default", epochs=2, batch_size=16, lr=1e-3, patience=50,
                                           average_from=2, votes=str(tiny_votes(tiny_dataset)), unreadable=0.2),
          log=logs.append)
    (out.parent / "train.log").write_text("\n".join(logs))
    return out


def tiny_votes(root: Path) -> Path:
    """FER+-style votes for every face of ``tiny_dataset``: 7 of 10 people give its folder's class (so the
    majority is its label), the other 3 the next classes, one each."""
    import csv

    from batchemo.sources.votes import FERPLUS_COLUMNS, FERPLUS_TO_CLASS

    column = {c: name for name, c in FERPLUS_TO_CLASS.items()}
    path = root / "votes.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", *FERPLUS_COLUMNS])
        for img in sorted(root.glob("*/*/*.jpg")):
            k = CLASSES.index({"natural": "neutral"}.get(img.parent.name.lower(), img.parent.name.lower()))
            votes = dict.fromkeys(FERPLUS_COLUMNS, 0)
            votes[column[CLASSES[k]]] = 7
            for j in (1, 2, 3):
                votes[column[CLASSES[(k + j) % len(CLASSES)]]] += 1
            w.writerow([str(img.relative_to(root)), *votes.values()])
    return path


def copy_run(out: Path, folder: Path) -> Path:
    """A copy of a run (model, card, history, curves, checkpoint folder) in ``folder``; its new model path."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for p in out.parent.glob(out.stem + ".*"):
        (shutil.copytree if p.is_dir() else shutil.copy2)(p, folder / p.name)
    return folder / out.name
