"""LIME explanations: what is explained is what is shown, per-class fits, faithfulness scores, determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest

from batchemo.explain.lime import (
    LimeSettings,
    auc,
    classifier_fn,
    curves,
    explain_face,
    explain_faces,
    explained_classifier,
    hidden_face,
    lime_samples,
    perturb,
    segment,
)
from batchemo.report.pictures import heatmap_image

FAST = LimeSettings(num_samples=120)


@pytest.fixture(scope="module")
def faces48(lfw_faces) -> np.ndarray:
    """scikit-image's 100 LFW faces, resized to 48x48 like a detected crop."""
    import cv2

    return np.stack([cv2.resize(f, (48, 48), interpolation=cv2.INTER_LINEAR) for f in lfw_faces])


@pytest.fixture(scope="module")
def untrained(untrained_model_path):
    from batchemo.emotions.model import load_model

    return load_model(untrained_model_path)


@pytest.fixture(scope="module")
def fer_faces(shared) -> tuple[np.ndarray, list[str]]:
    """Two faces of each FER2013 validation class, read straight from the archive (skipped without ../shared)."""
    import tarfile

    import cv2

    archive = shared / "datasets" / "fer2013.tar.gz"
    if not archive.exists():
        pytest.skip(f"needs {archive}")
    faces, names, per = [], [], {}
    with tarfile.open(archive) as tar:
        for m in tar:
            parts = m.name.split("/")
            if m.isfile() and "validation" in parts and per.get(parts[-2], 0) < 2:
                buf = np.frombuffer(tar.extractfile(m).read(), np.uint8)
                faces.append(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
                names.append(parts[-2])
                per[parts[-2]] = per.get(parts[-2], 0) + 1
                if len(per) == 7 and all(v == 2 for v in per.values()):
                    break
    return np.stack(faces), names


@pytest.mark.parametrize("quantized", [True, False])
@pytest.mark.parametrize("tta", ["none", "hflip", "rot5"])
def test_the_explained_classifier_gives_the_shown_label(default_model, faces48, quantized, tta):
    """On every face, LIME's classifier on the untouched crop (its first sample) gives model.predict's label,
    whichever way the model card reads a face (one pass, flip-averaged, two turns)."""
    card_tta = default_model.tta
    default_model.tta = tta
    try:
        shown = default_model.predict(faces48).argmax(1)
        settings = LimeSettings(quantized=quantized)
        used = []
        for face, label in zip(faces48, shown):
            clf, described, idx = explained_classifier(default_model, face, settings)
            assert idx == label
            assert int(clf(face[None]).argmax()) == label, described
            assert ("flip-averaged" in described) == (tta == "hflip")
            assert ("two 5° turns" in described) == (tta == "rot5")
            used.append(described.startswith("int8"))
            assert (clf.forward is default_model.int8) == used[-1]
        # int8 really is used where it is asked for (it gives the shown label on nearly every face)
        assert np.mean(used) >= (0.9 if quantized else 0.0) and (quantized or not any(used))
    finally:
        default_model.tta = card_tta
    for face in faces48:  # lime's first perturbation is the face itself
        seg = segment(face)
        first = perturb(face, hidden_face(face, seg), seg, lime_samples(int(seg.max()) + 1, 5, 0)[:1])
        assert np.array_equal(first[0], face)


def test_int8_is_dropped_where_it_disagrees_or_is_missing(default_model, faces48, monkeypatch):
    """The float network is explained when the int8 pass's top class is not the shown one, or when the
    model has no int8 pass (and fastpath says why); otherwise int8 is."""
    from batchemo.emotions import fastpath

    face = faces48[0]
    shown = int(default_model.predict(face[None]).argmax())
    clf, described, _ = explained_classifier(default_model, face)
    assert described.startswith("int8 TFLite") and clf.forward is fastpath.quantized_forward(default_model)

    def contrary(x):  # an int8 pass that always names another class
        p = np.zeros((len(x), 7), np.float32)
        p[:, (shown + 1) % 7] = 1.0
        return p

    monkeypatch.setattr(default_model, "int8", contrary)
    clf, described, _ = explained_classifier(default_model, face)
    assert described.startswith("float") and int(clf(face[None]).argmax()) == shown
    monkeypatch.setattr(default_model, "int8", None)
    clf, described, _ = explained_classifier(default_model, face)
    assert described.startswith("float") and int(clf(face[None]).argmax()) == shown
    assert fastpath.unavailable(default_model) == "the model has no int8 flatbuffer"


def test_keras_fallback_converts_its_own_int8_pass(untrained_model_path, faces48):
    """Where the model runs on TensorFlow, the int8 pass is converted from it, and errors are not swallowed."""
    from batchemo.emotions import fastpath
    from batchemo.emotions.model import load_model

    keras_model = load_model(untrained_model_path, runtime="keras")
    fwd = fastpath.quantized_forward(keras_model)
    assert fwd is not None and fwd.kind == "int8" and fastpath.unavailable(keras_model) is None
    x = faces48[:8, :, :, None].astype(np.float32) / 255
    np.testing.assert_allclose(fwd(x), keras_model.predict_scaled(x, tta=False), atol=0.05)


def test_explanations_default_to_the_shown_class(default_model, faces48):
    crops = list(faces48[:3])
    shown = default_model.predict(np.stack(crops)).argmax(1)
    out = explain_faces(default_model, crops, settings=FAST, n_jobs=1)
    assert [list(o) for o in out] == [[default_model.classes[i]] for i in shown]


def test_each_class_gets_its_own_fit(default_model, faces48):
    exps = explain_face(default_model, faces48[0], ["happy", "sad", "angry"], FAST)
    assert list(exps) == ["happy", "sad", "angry"]
    scores = [e.score for e in exps.values()]
    assert len(set(scores)) == 3, scores
    assert exps["happy"].weights != exps["sad"].weights


def test_weights_and_scores_are_lime_s_own(untrained, faces48):
    """Same perturbations and the same LimeBase fit as lime's explain_instance: identical weights, and lime's
    single score is ours for the last label it fitted."""
    from lime import lime_image
    from skimage.color import gray2rgb

    s = LimeSettings(num_samples=100, tta=False, quantized=False, faithfulness=False, seed=3, sampling="lime")
    ours = explain_face(untrained, faces48[1], ["fear", "happy"], s)
    lime_image.tqdm = lambda it, *a, **k: it
    theirs = lime_image.LimeImageExplainer(random_state=3).explain_instance(
        gray2rgb(faces48[1]), classifier_fn(untrained, tta=False), labels=(2, 3), top_labels=None,
        num_samples=100, batch_size=100, random_seed=3, segmentation_fn=s.segmenter())
    for idx, name in ((2, "fear"), (3, "happy")):
        assert ours[name].weights == pytest.approx(dict(theirs.local_exp[idx]), abs=1e-9)
    assert ours["happy"].score == pytest.approx(theirs.score)


def test_faithfulness_fields(default_model, faces48):
    """Each AUC is the area under the curve recomputed here from the explanation's own segments and weights
    (LIME's order) and from the face's random orders, on the classifier that was explained."""
    from batchemo.explain.lime import lime_order, random_orders

    explained = explain_faces(default_model, list(faces48[4:7]), [["happy", "neutral"]] * 3, FAST, n_jobs=2)
    assert len(explained) == 3
    for face, e in zip(faces48[4:7], explained):
        assert set(e) == {"happy", "neutral"}
        clf, _, _ = explained_classifier(default_model, face, FAST)
        for name, x in e.items():
            idx, n = default_model.classes.index(name), int(x.segments.max()) + 1
            orders = [lime_order(x.weights, n)] + random_orders(n, FAST.random_orders, FAST.seed)
            c = curves(clf, face, x.segments, hidden_face(face, x.segments, FAST.hide_color), orders,
                       FAST.faithfulness_steps)[..., idx]
            assert x.deletion_auc == pytest.approx(auc(c[0, 0]), abs=1e-5)
            assert x.insertion_auc == pytest.approx(auc(c[0, 1]), abs=1e-5)
            assert x.deletion_auc_random == pytest.approx(np.mean([auc(r) for r in c[1:, 0]]), abs=1e-5)
            assert x.insertion_auc_random == pytest.approx(np.mean([auc(r) for r in c[1:, 1]]), abs=1e-5)
            assert x.num_samples == FAST.num_samples and x.classifier
    off = explain_face(default_model, faces48[4], None, LimeSettings(num_samples=50, faithfulness=False))
    assert math.isnan(next(iter(off.values())).deletion_auc)


def test_curves_start_and_end_where_they_should(default_model, faces48):
    face = faces48[8]
    seg = segment(face)
    n = int(seg.max()) + 1
    hidden = hidden_face(face, seg)
    clf, _, _ = explained_classifier(default_model, face)
    c = curves(clf, face, seg, hidden, [np.arange(n), np.arange(n)[::-1]], steps=4)
    assert c.shape == (2, 2, 5, 7)
    full, none = clf(face[None])[0], clf(hidden[None])[0]
    for k in range(2):
        np.testing.assert_allclose(c[k, 0, 0], full, atol=1e-6)  # deletion starts at the face
        np.testing.assert_allclose(c[k, 0, -1], none, atol=1e-6)  # and ends fully hidden
        np.testing.assert_allclose(c[k, 1, 0], none, atol=1e-6)  # insertion the other way round
        np.testing.assert_allclose(c[k, 1, -1], full, atol=1e-6)
    assert auc(np.ones(9)) == pytest.approx(1.0) and auc(np.linspace(1, 0, 5)) == pytest.approx(0.5)


def test_lime_order_beats_random_order_on_fer_faces(default_model, fer_faces):
    faces, _ = fer_faces
    exps = [next(iter(e.values())) for e in explain_faces(default_model, list(faces[::2]), settings=LimeSettings())]
    assert np.mean([e.deletion_auc for e in exps]) < np.mean([e.deletion_auc_random for e in exps]) - 0.1
    assert np.mean([e.insertion_auc for e in exps]) > np.mean([e.insertion_auc_random for e in exps]) + 0.1
    assert np.mean([e.faithfulness > 0 for e in exps]) >= 0.8


def test_seeded_and_thread_safe(default_model, faces48):
    crops = list(faces48[10:13])
    labels = [["happy", "surprise"]] * 3
    one = explain_faces(default_model, crops, labels, FAST, n_jobs=1)
    two = explain_faces(default_model, crops, labels, FAST, n_jobs=2)
    for a, b in zip(one, two):
        for name in a:
            assert a[name].weights == b[name].weights
            assert a[name].score == b[name].score and a[name].deletion_auc == b[name].deletion_auc
            np.testing.assert_array_equal(a[name].heatmap, b[name].heatmap)
    other = explain_face(default_model, crops[0], ["happy"], LimeSettings(num_samples=120, seed=1))
    assert other["happy"].weights != one[0]["happy"].weights


def test_halves_sampling():
    data = lime_samples(47, 300, seed=5, sampling="halves")
    assert data.shape == (300, 47)
    assert data[0].all() and not data[1].any()  # the face itself, then everything hidden
    np.testing.assert_array_equal(data[2::2], 1 - data[3::2])  # each sample followed by its complement
    assert set(data[2:].sum(1)) == {23, 24}
    np.testing.assert_array_equal(data, lime_samples(47, 300, seed=5, sampling="halves"))
    with pytest.raises(ValueError):
        lime_samples(47, 10, 0, sampling="nope")


def test_heatmap_image(faces48):
    img = heatmap_image(faces48[0], np.linspace(-1, 1, 48 * 48).reshape(48, 48), size=96)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
