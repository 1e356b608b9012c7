"""What a report says, a person can trust: uncertain labels, headlines, faithfulness verdicts, tags clear of
faces, and people grouped by the measured rule (fast tests; the browser test is test_report_browser.py)."""
from __future__ import annotations

import numpy as np
import pytest

from batchemo.core.records import CLASSES


def _probs(top: float, label: str = "sad") -> np.ndarray:
    p = np.full(len(CLASSES), (1 - top) / (len(CLASSES) - 1))
    p[CLASSES.index(label)] = top
    return p


def test_uncertain_is_the_measured_threshold():
    from batchemo.emotions.doubt import UNCERTAIN_CONFIDENCE, is_uncertain, uncertain_label

    assert uncertain_label(0.39) and uncertain_label(UNCERTAIN_CONFIDENCE - 1e-6)
    assert not uncertain_label(UNCERTAIN_CONFIDENCE) and not uncertain_label(0.99)
    assert not uncertain_label(None) and not uncertain_label(float("nan"))
    assert is_uncertain(np.stack([_probs(0.41), _probs(0.97)])).tolist() == [True, False]


def test_headline_is_the_mean_probability_or_mixed():
    from batchemo.people.refs import MIXED, headline

    # two weak "sad" faces and one strong "happy" one: the mean says happy, not the vote
    mean = np.mean([_probs(0.36, "sad"), _probs(0.34, "sad"), _probs(0.99, "happy")], axis=0)
    assert headline(dict(zip(CLASSES, mean))) == "happy"
    even = dict(zip(CLASSES, np.mean([_probs(0.6, "sad"), _probs(0.6, "happy")], axis=0)))
    assert headline(even) == MIXED


def test_faithfulness_verdicts():
    from batchemo.explain.faithfulness import FAITHFULNESS_STRONG, FAITHFULNESS_WEAK, faithfulness_verdict

    assert faithfulness_verdict(FAITHFULNESS_WEAK - 0.01) == "weak"
    assert faithfulness_verdict(0.5 * (FAITHFULNESS_WEAK + FAITHFULNESS_STRONG)) == "fair"
    assert faithfulness_verdict(FAITHFULNESS_STRONG) == "strong"
    assert faithfulness_verdict(float("nan")) == "" and faithfulness_verdict(None) == ""


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_tags_are_placed_clear_of_every_face_box():
    from batchemo.report.pictures import place_tags

    # a group photo: three faces edge to edge along the top, so no tag fits above any of them
    boxes = [(5, 2, 100, 120), (110, 2, 100, 120), (215, 2, 100, 120)]
    sizes = [(95, 16)] * 3
    spots = place_tags(boxes, sizes, 330, 220)
    assert all(s is not None for s in spots)
    rects = [(x, y, x + w, y + h) for x, y, w, h in boxes]
    tags = [(x, y, x + w, y + h) for (x, y), (w, h) in zip(spots, sizes)]
    for k, t in enumerate(tags):
        assert 0 <= t[0] and t[2] <= 330 and 0 <= t[1] and t[3] <= 220
        assert not any(_overlap(t, r) for r in rects), (k, t)
        assert not any(_overlap(t, o) for j, o in enumerate(tags) if j != k)
    # a face filling the picture: no spot on it
    assert place_tags([(0, 0, 100, 100)], [(60, 14)], 100, 100) == [None]


def test_a_tag_that_fits_nowhere_shrinks_to_its_number_inside_the_picture():
    """A crowded frame never grows a strip of tags: the tag becomes '#7' in its box's corner, same size picture."""
    from batchemo.core.records import Box
    from batchemo.report.pictures import annotate

    img = np.zeros((100, 100, 3), np.uint8)
    out = annotate(img, [(Box(0, 0, 100, 100), "sad", 0.4, 7)])
    assert out.shape == img.shape
    lit = out.max(2) > 100
    assert lit[3:20, 3:30].mean() > 0.7  # the corner tag '#7', filled with sad's colour
    assert not lit[3:97, 3:97][:, 30:].any() and not lit[25:97, 3:97].any()  # short: no 'sad 40%' beside it


def test_close_cluster_means_are_merged_and_far_ones_kept_apart():
    from batchemo.people.cluster import cluster, merge_close_clusters

    rng = np.random.default_rng(0)
    centre = rng.normal(size=128)
    centre /= np.linalg.norm(centre)
    a = centre + rng.normal(scale=0.01, size=(3, 128))
    b = centre + 0.3 * np.eye(128)[0] + rng.normal(scale=0.01, size=(3, 128))  # 0.3 from a: one person
    far = centre + 1.0 * np.eye(128)[1] + rng.normal(scale=0.01, size=(2, 128))
    emb = np.concatenate([a, b, far]).astype(np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    merged = merge_close_clusters(emb, labels, 0.5)
    assert len(set(merged[:6])) == 1 and merged[6] == merged[7] != merged[0]
    assert len(set(merge_close_clusters(emb, labels, 0.2).tolist())) == 3  # closer than asked: kept apart
    with_nan = np.concatenate([emb, np.full((1, 128), np.nan, np.float32)])
    found = cluster(with_nan, 0.55)
    assert found[-1] == -1 and len(set(found[:6].tolist())) == 1 and found[6] != found[0]


def test_summarise_gives_the_headline_of_the_shares_the_bars_show():
    """Two faces labelled sad and one happy: the headline is sad, as the bars (shares of labels) show, even
    though the happy face's 0.99 makes happy the highest mean probability."""
    from batchemo.people.refs import FaceRef, summarise

    refs = [FaceRef("a.jpg", "sad", 0.36, _probs(0.36, "sad"), np.zeros(128), face_index=0, person="p"),
            FaceRef("b.jpg", "sad", 0.34, _probs(0.34, "sad"), np.zeros(128), face_index=0, person="p"),
            FaceRef("c.jpg", "happy", 0.99, _probs(0.99, "happy"), np.zeros(128), face_index=0, person="p")]
    (p,) = summarise(refs)
    assert p["shares"]["sad"] == pytest.approx(2 / 3) and p["dominant"] == "sad"
    assert max(p["mean_probs"], key=p["mean_probs"].get) == "happy"
    assert p["mean_probs"]["happy"] == pytest.approx(np.mean([r.probabilities[CLASSES.index("happy")] for r in refs]))


@pytest.mark.slow
def test_people_on_the_shared_identities(shared):
    """The shipped rule on ../shared/identities: no two people merged, and every person found whole."""
    from pathlib import Path

    from batchemo import run
    from batchemo.people.cluster import name_people, pairwise_scores

    folder = shared / "identities"
    if not folder.exists():
        pytest.skip(f"needs {folder}")
    result = run(folder, explain=False, progress=False)
    table = result.table.set_index(["path", "face_index"])
    best = {}
    for r in result.faces:
        if np.isfinite(r.embedding).all():
            area = int(table.loc[(r.source, r.face_index), "w"]) * int(table.loc[(r.source, r.face_index), "h"])
            if r.source not in best or area > best[r.source][0]:
                best[r.source] = (area, r)
    refs = [best[s][1] for s in sorted(best)]
    assert len(refs) >= 50
    truth = [Path(r.source).parent.name if Path(r.source).parent.name != "_distractors" else r.source for r in refs]
    precision, recall = pairwise_scores(truth, name_people(np.stack([r.embedding for r in refs])))
    assert precision == 1.0 and recall >= 0.95


def test_tolerance_option_is_checked_and_changes_the_grouping(tmp_path, capsys):
    from batchemo.cli import main
    from batchemo.people.cluster import name_people

    with pytest.raises(SystemExit) as e:
        main(["run", str(tmp_path), "--csv", str(tmp_path / "x.csv"), "--tolerance", "0.01"])
    assert e.value.code == 2 and "--tolerance" in capsys.readouterr().err
    rng = np.random.default_rng(1)
    a = rng.normal(size=128)
    emb = np.stack([a, a + 0.3 * np.eye(128)[0]]).astype(np.float32)  # 0.3 apart
    assert len(set(name_people(emb, tolerance=0.2))) == 2 and len(set(name_people(emb, tolerance=0.55))) == 1
