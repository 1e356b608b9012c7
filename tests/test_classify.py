"""The one road from crops to predictions and explanations, and that run, video and audit all take it."""
from __future__ import annotations

import numpy as np
import pytest

from batchemo.core.records import CLASSES, Faces
from batchemo.explain import classify as classify_module
from batchemo.explain.classify import classify, classify_faces
from batchemo.explain.lime import LimeSettings

from .conftest import write_image


@pytest.fixture(scope="module")
def model(untrained_model_path):
    from batchemo.emotions.model import load_model

    return load_model(untrained_model_path)


@pytest.fixture(scope="module")
def crops(lfw_faces):
    import cv2

    return np.stack([cv2.resize(f, (48, 48)) for f in lfw_faces[:3]])


@pytest.fixture
def calls(monkeypatch):
    """Every call of classify(), whoever makes it: (number of crops, explained or not, extra labels)."""
    seen = []
    real = classify_module.classify

    def spy(model, crops, explain=None, also_explain=None, n_jobs=1, progress=False):
        seen.append((len(crops), explain is not None, also_explain))
        return real(model, crops, explain, also_explain, n_jobs, progress)

    monkeypatch.setattr(classify_module, "classify", spy)
    return seen


def test_probabilities_follow_the_models_predict_with_its_tta(model, crops):
    probs, exps = classify(model, crops)
    assert exps is None and probs.shape == (3, len(CLASSES))
    np.testing.assert_allclose(probs, model.predict(crops), atol=1e-6)
    card_tta = model.tta
    try:  # the card's test-time augmentation decides, not the caller
        for way in ("none", "hflip", "rot5"):
            model.tta = way
            np.testing.assert_allclose(classify(model, crops)[0], model.predict(crops), atol=1e-6)
    finally:
        model.tta = card_tta


def test_the_shown_label_is_explained_and_nothing_else_unless_asked(model, crops):
    lime = LimeSettings(num_samples=60)
    probs, exps = classify(model, crops, lime)
    shown = [CLASSES[i] for i in probs.argmax(1)]
    assert [list(e) for e in exps] == [[s] for s in shown]
    other = [[c for c in CLASSES if c != s][0] for s in shown]
    _, exps = classify(model, crops, lime, also_explain=[[o] for o in other])
    assert [sorted(e) for e in exps] == [sorted([s, o]) for s, o in zip(shown, other)]


def test_classify_faces_batches_records_and_splits_them_back(model, crops, calls):
    records = [Faces("a", np.zeros((2, 4), np.int64), np.ones(2, np.float32), crops[:2]),
               Faces.empty("b"),
               Faces("c", np.zeros((1, 4), np.int64), np.ones(1, np.float32), crops[2:])]
    classify_faces(model, records)
    assert calls == [(3, False, None)]  # one batched call for all three records
    expected = model.predict(crops)
    np.testing.assert_allclose(records[0].probabilities, expected[:2], atol=1e-6)
    assert records[1].probabilities.shape == (0, len(CLASSES)) and records[1].labels == []
    np.testing.assert_allclose(records[2].probabilities, expected[2:], atol=1e-6)


def test_run_takes_the_one_road(tmp_path, astronaut_rgb, untrained_model_path, calls):
    from batchemo import analyze

    write_image(tmp_path / "a.jpg", astronaut_rgb)
    df = analyze(tmp_path, model=untrained_model_path, lime_samples=60, progress=False)
    assert calls == [(1, True, None)]
    assert (df["lime_label"] == df["label"]).all()


def test_video_takes_the_one_road(tmp_path, astronaut_rgb, model, calls):
    from batchemo.pipeline.pictures import pictures_of
    from batchemo.pipeline.video import video_timeline

    from .test_video import write_video

    frames = [np.pad(astronaut_rgb[::2, ::2], ((10, 10), (10 + 8 * k, 90 - 8 * k), (0, 0))) for k in range(6)]
    clip = video_timeline(write_video(tmp_path / "v.avi", frames), model, fps=0, progress=False)
    assert clip.rows == 6
    assert calls == [(6, False, None)]  # the frames' faces, batched
    pictures_of([clip], model, explain=1, lime_samples=60)
    assert calls[-1][1] is True  # the keyframe explained through the same road


def test_audit_takes_the_one_road(tmp_path, lfw_faces, untrained_model_path, calls):
    import cv2

    from batchemo.pipeline.audit import audit

    for n in range(14):
        write_image(tmp_path / "set" / CLASSES[n % 7] / f"{n}.png", cv2.resize(lfw_faces[n], (48, 48)))
    r = audit(tmp_path / "set", untrained_model_path, max_explanations=2, sample=0, lime_samples=60,
              progress=False)
    # evaluate() reads faces as classify does (model.predict: the card's TTA and calibration)
    from batchemo.emotions.model import load_model

    faces = np.stack([cv2.resize(lfw_faces[n], (48, 48)) for n in range(14)])
    order = np.argsort([f"{CLASSES[n % 7]}/{n}.png" for n in range(14)], kind="stable")
    np.testing.assert_allclose(r.evaluation.probabilities, classify(load_model(untrained_model_path), faces[order])[0],
                               atol=1e-6)
    n, explained, extra = calls[0]  # the mistakes explained, through classify
    assert (n, explained) == (2, True) and len(extra) == 2
    for m in r.explained:  # predicted and true class, each explained
        assert set(m.explanations) == {m.predicted, m.true}
