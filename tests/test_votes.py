"""FER+ votes: distributions, majority, agreement bands, calibration, and matching a votes file to a data set."""
from __future__ import annotations

import numpy as np
import pytest

from batchemo.core.records import CLASSES
from batchemo.sources.votes import (
    FERPLUS_COLUMNS,
    VotesError,
    agreement_bands,
    cross_entropy,
    distribution,
    fit_temperature,
    majority,
    match,
    temper,
    vote_scores,
)


def _votes(**counts) -> np.ndarray:
    return np.array([[counts.get(c, 0) for c in FERPLUS_COLUMNS]])


def test_distribution_keeps_the_seven_emotions_in_batchemo_order():
    d = distribution(_votes(happiness=6, neutral=2, contempt=1, nf=1))
    assert d.shape == (1, 7) and d[0, CLASSES.index("happy")] == pytest.approx(0.75)
    assert d[0, CLASSES.index("neutral")] == pytest.approx(0.25) and d.sum() == pytest.approx(1)
    assert distribution(_votes(unknown=10)).sum() == 0  # nobody chose an emotion: no distribution


def test_majority_leaves_out_ties_and_non_emotions_as_ferplus_does():
    v = np.concatenate([_votes(sadness=5, neutral=4, fear=1), _votes(sadness=4, neutral=4, happiness=2),
                        _votes(contempt=6, anger=4), _votes(nf=9, anger=1)])
    assert majority(v).tolist() == [CLASSES.index("sad"), -1, -1, -1]


def test_scores_bands_and_the_entropy_floor():
    v = np.concatenate([_votes(happiness=8, neutral=2), _votes(sadness=6, neutral=4), _votes(surprise=10)])
    exact = distribution(v)
    s = vote_scores(v, exact)
    assert s.majority_accuracy == 1.0 and s.strong_faces == 3 and s.cross_entropy == pytest.approx(s.floor)
    assert s.floor == pytest.approx(np.mean([-(0.8 * np.log(0.8) + 0.2 * np.log(0.2)),
                                             -(0.6 * np.log(0.6) + 0.4 * np.log(0.4)), 0.0]), abs=1e-6)
    bands = {round(b.lower, 1): b for b in agreement_bands(v, exact) if b.count}
    assert set(bands) == {0.6, 0.8, 0.9} and all(abs(b.gap) < 1e-6 for b in bands.values())
    sure = np.eye(7)[exact.argmax(1)]  # always 100% sure: over-confident by what people disagree
    assert vote_scores(v, sure).bands[-1].gap == pytest.approx(1 - np.mean([0.8, 0.6, 1.0]))


def test_temperature_softens_an_over_confident_model_to_what_people_say():
    rng = np.random.default_rng(0)
    truth = rng.dirichlet(np.ones(7) * 0.5, size=400)
    votes = np.zeros((400, 10), int)
    for i, p in enumerate(truth):
        for k, n in enumerate(rng.multinomial(10, p)):
            votes[i, FERPLUS_COLUMNS.index({"angry": "anger", "disgust": "disgust", "fear": "fear",
                                            "happy": "happiness",
                                            "neutral": "neutral", "sad": "sadness",
                                            "surprise": "surprise"}[CLASSES[k]])] = n
    sharp = temper(truth, 0.4)  # the same ranking, much surer
    t = fit_temperature(votes, sharp)
    assert 2.0 < t < 3.2
    assert cross_entropy(votes, temper(sharp, t)) < cross_entropy(votes, sharp) - 0.2
    np.testing.assert_allclose(temper(sharp, t).sum(1), 1, atol=1e-5)
    assert (temper(sharp, t).argmax(1) == sharp.argmax(1)).all()  # labels never change


def test_match_by_class_folder_and_file_name_and_by_split_where_names_repeat(tmp_path):
    header = "file," + ",".join(FERPLUS_COLUMNS)
    row = lambda f, k: f + "," + ",".join("5" if i == k else "0" for i in range(10))  # noqa: E731
    (tmp_path / "a.csv").write_text("\n".join([header, row("fer/train/angry/1.jpg", 4), row("fer/train/sad/1.jpg", 3)]))
    got = match(["/data/Train/ANGRY/1.jpg", "/x/sad/1.jpg"], tmp_path / "a.csv")
    assert got[:, 4].tolist() == [5, 0] and got[:, 3].tolist() == [0, 5]
    (tmp_path / "b.csv").write_text("\n".join([header, row("train/angry/1.jpg", 4), row("validation/angry/1.jpg", 1)]))
    got = match(["/d/validation/angry/1.jpg", "/d/train/angry/1.jpg"], tmp_path / "b.csv")
    assert got[:, 1].tolist() == [5, 0] and got[:, 4].tolist() == [0, 5]
    with pytest.raises(VotesError, match="no votes for /d/test/angry/1.jpg"):
        match(["/d/test/angry/1.jpg"], tmp_path / "b.csv")


def test_ferplus_own_file_matches_fer2013_csv_by_line(tmp_path):
    (tmp_path / "fer2013new.csv").write_text(
        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
        "Training,fer0000000.png,4,0,0,1,3,2,0,0,0,0\nTraining,fer0000001.png,6,0,1,1,0,0,0,0,2,0\n")
    got = match(["fer2013.csv:3", "fer2013.csv:2"], tmp_path / "fer2013new.csv")
    assert got[:, 0].tolist() == [6, 4]
    with pytest.raises(VotesError, match="no votes for fer2013.csv:4"):
        match(["fer2013.csv:4"], tmp_path / "fer2013new.csv")


def test_a_bad_count_names_its_line_and_column(tmp_path):
    header = "file," + ",".join(FERPLUS_COLUMNS)
    (tmp_path / "v.csv").write_text(header + "\na.jpg,1,2,3,4,x,0,0,0,0,0\n")
    with pytest.raises(VotesError, match=r"v.csv:2: column 'anger' holds 'x', not a vote count 0-10"):
        match(["a.jpg"], tmp_path / "v.csv")
