"""Shared fixtures: the ../shared data (skipped when absent), generated images, small models."""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BATCHEMO_SHARED", ROOT.parent / "shared"))


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
    from batchemo.model import DEFAULT_MODEL_PATH, load_model

    if not DEFAULT_MODEL_PATH.exists():
        pytest.fail(f"the shipped model {DEFAULT_MODEL_PATH} is missing")
    return load_model()


@pytest.fixture(scope="session")
def untrained_model_path(tmp_path_factory) -> Path:
    """A real, untrained 'default' network saved with its card: for plumbing tests that need no accuracy."""
    import keras

    from batchemo.model import ModelCard, build

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("models") / "untrained.keras"
    build("default").save(path)
    ModelCard(architecture="default", training_data="(untrained, for tests)").save(path)
    return path


def write_image(path: Path, rgb: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    img = rgb[..., ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    assert cv2.imwrite(str(path), img), path
    return path
