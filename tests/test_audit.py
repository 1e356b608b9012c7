"""batchemo audit: exact metrics on a generated labelled set, the report's safety, bad input, the real split.

The generated set's faces carry their intended prediction in three marker pixels that a stub model reads,
so accuracy, confusion, calibration and the gallery's choice are known in advance. The real CNN is tested
through the CLI (an untrained network) and on FER2013's validation split (the shipped model).
"""
from __future__ import annotations

import html.parser
import math
from pathlib import Path

import numpy as np
import pytest

from batchemo.emotions.model import CLASSES, ModelCard, ModelError, preprocess
from batchemo.outputs.tables import write_table
from batchemo.pipeline.audit import audit, expected_calibration_error, mistake_pairs, reliability_bins, select_mistakes
from batchemo.report.audit import write_audit_report
from batchemo.sources.labelled import DatasetError

MAGIC = 251  # marker pixel (0, 0); pixel (0, 1) = 7 + predicted class index; pixel (0, 2) = confidence byte
HI, LO, WRONG, HAPPY_AS_SAD = 242, 166, 217, (191, 140)  # confidence bytes, each in its own 1/15-wide bin
HOSTILE_OK = "<img src=x onerror=alert(1)>.png"
HOSTILE_BAD = "<script>alert(1).jpg"  # (a file name cannot hold "/")


class MarkerModel:
    """Stands in for EmotionModel: the prediction is the one written into the face's marker pixels.

    A face whose marker LIME has hidden gets uniform probabilities, so LIME finds the marker's superpixel.
    ``classes`` may be any order (the output columns follow it) or even other classes (to test the error).
    """

    def __init__(self, classes=CLASSES):
        self.classes = tuple(classes)
        self.card = ModelCard(architecture="marker-stub", training_data="(test)")
        self.tta = False
        self.path = None

    def predict_scaled(self, x, batch_size=512, tta=None):
        px = np.rint(np.asarray(x)[:, 0, :3, 0] * 255).astype(int)
        out = np.full((len(px), len(self.classes)), 1 / len(self.classes), np.float32)
        for row, (magic, k, c) in enumerate(px):
            if magic == MAGIC and 7 <= k < 7 + len(CLASSES):
                out[row] = (1 - c / 255) / (len(self.classes) - 1)
                out[row, self.classes.index(CLASSES[k - 7])] = c / 255
        return out

    def predict(self, faces, batch_size=512):
        return self.predict_scaled(preprocess(faces), batch_size)


def _face(lfw_faces, n: int, predicted: int, conf_byte: int) -> np.ndarray:
    import cv2

    face = cv2.resize(lfw_faces[n % len(lfw_faces)], (48, 48), interpolation=cv2.INTER_LINEAR)
    face[0, :3] = (MAGIC, 7 + predicted, conf_byte)
    return face


def _plan() -> list[tuple[int, int, int]]:
    """(true, predicted, confidence byte) per face: each class 2 right and 1 wrong; happy also 2 x sad."""
    plan = []
    for i in range(len(CLASSES)):
        plan += [(i, i, HI), (i, i, LO), (i, (i + 1) % 7, WRONG)]
    plan += [(3, 5, c) for c in HAPPY_AS_SAD]
    return plan


def build_set(root: Path, lfw_faces, hostile: bool = False) -> Path:
    import cv2

    for n, (t, p, c) in enumerate(_plan()):
        path = root / CLASSES[t] / f"{n:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), _face(lfw_faces, n, p, c))
    if hostile:
        assert cv2.imwrite(str(root / "angry" / HOSTILE_OK), _face(lfw_faces, 99, 0, HI))
        (root / "sad" / HOSTILE_BAD).write_bytes(b"not an image at all")
    return root


@pytest.fixture
def labelled(tmp_path, lfw_faces) -> Path:
    return build_set(tmp_path / "set", lfw_faces)


# ---------------------------------------------------------------- pure functions
def test_calibration_bins_and_ece_by_hand():
    conf = np.array([0.95, 0.95, 0.65, 0.05, 0.0, 1.0, 0.3])
    ok = np.array([1, 0, 1, 0, 0, 1, 0], bool)
    bins = reliability_bins(conf, ok, n_bins=10)
    assert [b.count for b in bins] == [2, 0, 1, 0, 0, 0, 1, 0, 0, 3]  # 0.0 goes to the first bin, 1.0 to the last
    assert bins[9].accuracy == pytest.approx(2 / 3) and bins[9].confidence == pytest.approx((0.95 + 0.95 + 1) / 3)
    assert math.isnan(bins[1].accuracy)
    expected = (2 * 0.025 + 1 * 0.3 + 1 * 0.35 + 3 * abs(2 / 3 - 2.9 / 3)) / 7
    assert expected_calibration_error(conf, ok, 10) == pytest.approx(expected)
    assert expected_calibration_error(np.array([0.8] * 5), np.array([1, 1, 1, 1, 0], bool)) == pytest.approx(0.0)
    assert math.isnan(expected_calibration_error(np.zeros(0), np.zeros(0, bool)))


def test_gallery_selection_is_round_robin_over_pairs_largest_first():
    labels = np.array([t for t, _, _ in _plan()])
    probs = MarkerModel().predict(np.stack([_face(np.zeros((1, 25, 25), np.uint8), 0, p, c) for _, p, c in _plan()]))
    pairs = mistake_pairs(labels, probs)
    assert [k for k, _ in pairs] == [(3, 5), (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 0)]
    happy_as_sad = pairs[0][1]
    assert probs[happy_as_sad[0], 5] > probs[happy_as_sad[1], 5]  # most confident mistake first
    assert select_mistakes(pairs, 3) == [happy_as_sad[0], pairs[1][1][0], pairs[2][1][0]]
    assert select_mistakes(pairs, 9)[-1] == happy_as_sad[1]  # the second round starts with the largest pair
    assert len(select_mistakes(pairs, 100)) == 9 and select_mistakes(pairs, 0) == []


# ---------------------------------------------------------------- audit on the generated set
def test_exact_metrics_calibration_and_gallery(labelled):
    r = audit(labelled, MarkerModel(), max_explanations=3, sample=5, seed=1, lime_samples=60, jobs=2)
    n = len(_plan())
    assert len(r.evaluation.labels) == n == 23
    assert r.accuracy == pytest.approx(14 / 23)
    cm = np.diag([2] * 7)
    for i in range(7):
        cm[i, (i + 1) % 7] = 1
    cm[3, 5] = 2
    np.testing.assert_array_equal(r.evaluation.confusion, cm)
    rep = r.evaluation.report()
    assert rep["happy"]["recall"] == pytest.approx(2 / 5) and rep["sad"]["precision"] == pytest.approx(2 / 5)
    c = {b: b / 255 for b in (HI, LO, WRONG, *HAPPY_AS_SAD)}
    ece = (7 * (1 - c[HI]) + 7 * (1 - c[LO]) + 7 * c[WRONG] + sum(c[b] for b in HAPPY_AS_SAD)) / 23
    assert r.ece == pytest.approx(ece, rel=1e-5)
    # the audit's bins are the card's: calibration.ECE_BINS (15) equal-width bins
    assert [b.count for b in r.bins] == [0] * 8 + [1, 7, 0, 1, 7, 0, 7]
    assert r.mistakes == 9
    assert [(g.true, g.predicted, g.count, len(g.shown)) for g in r.groups[:3]] == [
        ("happy", "sad", 2, 1), ("angry", "disgust", 1, 1), ("disgust", "fear", 1, 1)]
    first = r.groups[0].shown[0]
    assert (first.p_predicted == pytest.approx(c[191], rel=1e-5)
            and first.p_true == pytest.approx((1 - c[191]) / 6, rel=1e-5))
    assert set(first.explanations) == {"sad", "happy"}
    assert first.explanations["sad"].heatmap.shape == (48, 48)
    # the hidden marker is what moved the stub: its superpixel carries the largest weight for "sad"
    exp = first.explanations["sad"]
    assert exp.heatmap[0, 0] == pytest.approx(max(exp.weights.values()))
    assert len(r.sample) == 5 and len({s.index for s in r.sample}) == 5
    again = audit(labelled, MarkerModel(), max_explanations=0, sample=5, seed=1)
    assert [s.index for s in again.sample] == [s.index for s in r.sample]  # seeded
    assert again.explained == [] and again.accuracy == r.accuracy


def test_model_whose_classes_do_not_match_is_a_clear_error(labelled):
    other = MarkerModel(classes=("angry", "disgust", "fear", "happy", "calm", "sad", "surprise"))
    with pytest.raises(ModelError, match=r"marker-stub: the model's classes .*calm.* do not match the data's"):
        audit(labelled, other, max_explanations=0)


def test_csv_has_one_row_per_face_with_the_documented_columns(labelled, tmp_path):
    import pandas as pd

    r = audit(labelled, MarkerModel(), max_explanations=0)
    out = write_table(r.evaluation.table(), tmp_path / "out" / "predictions.csv")
    df = pd.read_csv(out)
    assert list(df.columns) == ["path", "true_label", "predicted_label", "confidence",
                                *(f"p_{c}" for c in CLASSES), "correct"]
    assert len(df) == 23 and df["correct"].sum() == 14
    assert df["path"].tolist() == r.evaluation.sources
    np.testing.assert_allclose(df[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0, atol=1e-5)
    assert (df["confidence"] == df[[f"p_{c}" for c in CLASSES]].max(axis=1)).all()
    assert not list((tmp_path / "out").glob(".tmp-*"))


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_report_is_self_contained_escaped_and_lists_unreadable_files(tmp_path, lfw_faces):
    data = build_set(tmp_path / "set", lfw_faces, hostile=True)
    r = audit(data, MarkerModel(), max_explanations=2, sample=100, lime_samples=40)
    assert [Path(s).name for s, _ in r.skipped] == [HOSTILE_BAD]  # listed, not fatal
    assert len(r.evaluation.labels) == 24
    out = write_audit_report(r, tmp_path / "report" / "audit.html")
    text = out.read_text()
    parser = _Tags()
    parser.feed(text)
    for tag, attrs in parser.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            assert value is None or value.startswith(("data:", "#")), (tag, key, value[:80])
    assert "http://" not in text and "https://" not in text
    assert HOSTILE_OK not in text and "<script>alert" not in text and "onerror=alert(1)>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in text and "&lt;script&gt;alert(1).jpg" in text
    assert [t for t, _ in parser.tags].count("script") == 0
    imgs = [a for t, a in parser.tags if t == "img"]
    assert len(imgs) == 3 * 2 + 24  # face + two heatmaps per explained mistake, one face per sampled face
    assert "62.5%" in text  # accuracy 15/24
    assert "Misclassification gallery" in text and "Expected calibration error" in text
    assert not list(out.parent.glob(".tmp-*"))


# ---------------------------------------------------------------- bad input
def test_unknown_class_folder_is_an_error_naming_it(labelled, tmp_path, capsys):
    from batchemo.cli import main

    (labelled / "bored").mkdir()
    with pytest.raises(DatasetError, match=r"bored: unknown class folder"):
        audit(labelled, MarkerModel())
    report = tmp_path / "a.html"
    assert main(["audit", str(labelled), "--report", str(report)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bored: unknown class folder" in err[0] and not report.exists()


def test_empty_class_and_misused_split_are_errors(labelled):
    for f in (labelled / "fear").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"fear: class folder 'fear' has no images"):
        audit(labelled, MarkerModel())
    with pytest.raises(ValueError, match=r"--split selects rows of a fer2013.csv"):
        audit(labelled, MarkerModel(), split="PrivateTest")


def test_fer2013_csv_split(tmp_path, lfw_faces):
    import pandas as pd

    from batchemo.sources.labelled import FER2013_CSV_ORDER

    rows = []
    for n, (t, p, c) in enumerate(_plan()):
        pixels = " ".join(map(str, _face(lfw_faces, n, p, c).ravel()))
        rows.append((FER2013_CSV_ORDER.index(CLASSES[t]), pixels, "PrivateTest" if n % 2 else "PublicTest"))
    csv = tmp_path / "fer2013.csv"
    pd.DataFrame(rows, columns=["emotion", "pixels", "Usage"]).to_csv(csv, index=False)
    r = audit(csv, MarkerModel(), split="PrivateTest", max_explanations=0)
    assert len(r.evaluation.labels) == 11 and r.evaluation.sources[0] == f"{csv}:3"
    right = sum(t == p for n, (t, p, _) in enumerate(_plan()) if n % 2)
    assert r.accuracy == pytest.approx(right / 11)


# ---------------------------------------------------------------- the real CNN
def test_cli_with_a_real_model_writes_report_and_csv(labelled, tmp_path, untrained_model_path, capsys):
    import pandas as pd

    from batchemo.cli import main

    report, csv = tmp_path / "o" / "audit.html", tmp_path / "o" / "p.csv"
    rc = main(["audit", str(labelled), "--model", str(untrained_model_path), "--report", str(report),
               "--csv", str(csv), "--max-explanations", "1", "--lime-samples", "50", "--sample", "4"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "23 faces from" in out and str(report) in out
    assert len(pd.read_csv(csv)) == 23 and "<html" in report.read_text()


def test_cli_model_whose_card_lists_other_classes_is_one_line(labelled, tmp_path, untrained_model_path, capsys):
    import json
    import shutil

    from batchemo.cli import main

    model = tmp_path / "other.keras"
    shutil.copy(untrained_model_path, model)
    card = json.loads(ModelCard.path_for(untrained_model_path).read_text())
    card["classes"] = ["angry", "disgust", "fear", "happy", "calm", "sad", "surprise"]
    ModelCard.path_for(model).write_text(json.dumps(card))
    assert main(["audit", str(labelled), "--model", str(model), "--csv", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(model) in err[0] and "calm" in err[0]
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.slow
def test_real_validation_split_reproduces_evaluate(fer_validation, default_model):
    from batchemo.emotions.evaluate import evaluate
    from batchemo.sources.labelled import load_split

    r = audit(fer_validation, default_model, max_explanations=2, lime_samples=200, sample=8)
    ev = evaluate(default_model, load_split(fer_validation, "validation"))
    assert len(r.evaluation.labels) == 3589
    assert r.accuracy == pytest.approx(ev.accuracy, abs=1e-9)
    np.testing.assert_array_equal(r.evaluation.confusion, ev.confusion)
    assert 0 <= r.ece < 0.5 and len(r.explained) == 2


# ---------------------------------------------------------------- FER+ votes: who is wrong, the model or the label
def _write_votes(root: Path, path: Path) -> Path:
    """A votes CSV for ``build_set``'s faces: where the stub model errs by one class, 8 of 10 people side with
    the model (a disputed label); where it reads happy as sad, 9 side with the data set (a model error)."""
    import csv

    from batchemo.sources.votes import FERPLUS_COLUMNS, FERPLUS_TO_CLASS

    column = {c: name for name, c in FERPLUS_TO_CLASS.items()}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", *FERPLUS_COLUMNS])
        for n, (t, p, c) in enumerate(_plan()):
            votes = dict.fromkeys(FERPLUS_COLUMNS, 0)
            if p != t and (t, p) != (3, 5):
                votes[column[CLASSES[p]]], votes[column[CLASSES[t]]] = 8, 2
            else:
                votes[column[CLASSES[t]]], votes["unknown"] = 9, 1
            w.writerow([f"ferplus/validation/{CLASSES[t]}/{n:02d}.png", *votes.values()])
    return path


def test_votes_tell_disputed_labels_from_model_errors(labelled, tmp_path):
    votes = _write_votes(labelled, tmp_path / "votes.csv")
    r = audit(labelled, MarkerModel(), votes=votes, max_explanations=3, sample=0, lime_samples=30, progress=False)
    assert r.verdict_counts() == {"disputed_label": 7, "model_error": 2, "other": 0, "no_majority": 0}
    assert r.accuracy == pytest.approx(14 / 23) and r.people_accuracy == pytest.approx(21 / 23)
    table = r.table()
    disputed = table[table["verdict"] == "disputed_label"]
    assert (disputed["people_label"] == disputed["predicted_label"]).all()
    assert (disputed["people_agree_predicted"] == 0.8).all() and (disputed["votes_unknown"] == 0).all()
    errors = table[table["verdict"] == "model_error"]
    assert (errors["true_label"] == "happy").all() and (errors["predicted_label"] == "sad").all()
    assert (table.loc[table["correct"], "verdict"] == "").all()
    shown = [m for m in r.explained if m.verdict]
    assert shown and all(sum(m.votes.values()) == 10 for m in shown)
    page = write_audit_report(r, tmp_path / "a.html").read_text()
    assert "Who is wrong: the model or the label?" in page and "disputed label" in page
    assert "accuracy against most people (FER+)" in page
    # confidence read against people, band by band, beside the data set's calibration
    from batchemo.sources.votes import vote_scores

    scores = vote_scores(r.votes, r.evaluation.probabilities)
    assert "Confidence against people" in page and f"{scores.cross_entropy:.3f} nats" in page
    assert page.count("people agreeing") == 1 and sum(b.count > 0 for b in scores.bands) >= 1


def test_cli_audit_with_votes(labelled, tmp_path, untrained_model_path, capsys):
    from batchemo.cli import main

    votes = _write_votes(labelled, tmp_path / "votes.csv")
    out = tmp_path / "a.csv"
    assert main(["audit", str(labelled), "--votes", str(votes), "--csv", str(out), "--model", str(untrained_model_path),
                 "--max-explanations", "0", "-q"]) == 0
    assert "against the FER+ majority: accuracy" in capsys.readouterr().out
    import pandas as pd

    assert {"verdict", "people_label", "votes_nf"} <= set(pd.read_csv(out).columns)
    bad = tmp_path / "bad.csv"
    bad.write_text("file,neutral\nx.png,3\n")
    assert main(["audit", str(labelled), "--votes", str(bad), "--csv", str(out), "--model",
                 str(untrained_model_path), "-q"]) == 2
    assert "bad.csv: no column(s) happiness" in capsys.readouterr().err
