"""People: embeddings, grouping faces into people, names from a known-faces folder, privacy of embeddings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from batchemo.people.cluster import KnownFaces, cannot_link, merge_close_clusters, name_people, pairwise_scores
from batchemo.people.refs import FaceRef, assign

from .conftest import write_image


def test_pairwise_scores_by_hand():
    truth = ["a", "a", "a", "b"]
    assert pairwise_scores(truth, ["p1", "p1", "p1", "p2"]) == (1.0, 1.0)
    # a and b merged: 3 true pairs found out of 3, 3 of the 6 pairs put together are right
    assert pairwise_scores(truth, ["p1"] * 4) == (0.5, 1.0)
    # a split in two: 1 of the 3 true pairs found; nothing wrongly merged
    assert pairwise_scores(truth, ["p1", "p1", "p2", "p3"]) == (1.0, pytest.approx(1 / 3))
    assert pairwise_scores(truth, ["", "", "p1", "p2"]) == (1.0, 0.0)  # no person: never a pair


def test_people_are_numbered_by_first_appearance_and_known_ones_named():
    """person_1 is the first face's person, whoever appears most: the same media numbers people alike in
    every command (a clip read by `run` or by `video`)."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=128), rng.normal(size=128)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    e = np.stack([b, a + 0.01, a, b + 0.01, a - 0.01, np.full(128, np.nan)]).astype(np.float32)
    assert name_people(e) == ["person_1", "person_2", "person_2", "person_1", "person_2", ""]
    assert name_people(e, weights=[1, 10, 1, 1, 1, 1]) == name_people(e)  # presence does not renumber
    assert name_people(e[1:]) == ["person_1", "person_1", "person_2", "person_1", ""]
    known = KnownFaces(names=["Bea"], embeddings=b[None].astype(np.float32))
    assert name_people(e, known=known) == ["Bea", "person_1", "person_1", "Bea", "person_1", ""]


def _ref(source, embedding, side=60.0, track=None, time=None, end=None):
    return FaceRef(source=source, label="neutral", confidence=0.5, probabilities=np.full(7, 1 / 7, np.float32),
                   embedding=np.asarray(embedding, np.float32), side=side, track=track, time=time, end=end)


def _unit(seed):
    v = np.random.default_rng(seed).normal(size=128)
    return v / np.linalg.norm(v)


def test_cannot_link_is_same_source_and_overlapping_closed_spans():
    apart = [("a.jpg", 0, 0), ("a.jpg", 0, 0), ("b.jpg", 0, 0), ("v", 0.0, 1.0), ("v", 1.0, 2.0), ("v", 1.5, 3.0),
             ("w", 0.0, 9.0)]
    assert cannot_link(apart) == {0: {1}, 1: {0}, 3: {4}, 4: {3, 5}, 5: {4}}


def test_faces_of_one_photo_never_share_a_person_even_with_identical_embeddings():
    a = _unit(0)
    refs = [_ref("one.jpg", a, side=60), _ref("one.jpg", a, side=100), _ref("one.jpg", a, side=80),
            _ref("other.jpg", a + 0.01, side=50)]
    people = [r.person for r in assign(refs)]
    assert "" not in people and len(set(people[:3])) == 3
    assert people[3] == people[1]  # the other photo joins the largest face, who seeded the split first
    assert [r.person for r in assign([_ref(r.source, r.embedding, r.side) for r in refs])] == people  # deterministic


def test_two_faces_of_one_photo_never_take_the_same_known_name():
    a = _unit(0)
    known = KnownFaces(names=["Ada"], embeddings=a[None].astype(np.float32))
    refs = [_ref("one.jpg", a, side=100), _ref("one.jpg", a + 0.01, side=60), _ref("two.jpg", a - 0.01)]
    assert [r.person for r in assign(refs, known)] == ["Ada", "person_1", "Ada"]


def test_tracks_on_screen_together_never_share_a_person_and_apart_ones_still_merge():
    a = _unit(1)
    refs = [_ref("v.mp4", a, 50, track=1, time=0.0, end=2.0), _ref("v.mp4", a + 0.02, 180, track=2, time=1.5, end=3.0),
            _ref("v.mp4", a - 0.02, 70, track=3, time=4.0, end=5.0), _ref("w.mp4", a, 60, track=1, time=0.0, end=9.0)]
    people = [r.person for r in assign(refs)]
    assert people[0] != people[1]
    assert people[2] == people[1] and people[3] == people[1]  # not on screen with track 2: one person
    # without time spans (all one instant of one source would conflict): plain clustering merges them all
    assert len(set(name_people(np.stack([r.embedding for r in refs])))) == 1


def test_merge_close_clusters_never_joins_conflicting_clusters():
    a = _unit(2)
    e = np.stack([a, a + 0.01, a - 0.01, _unit(3)]).astype(np.float32)
    labels = np.array([0, 1, 1, 2])
    assert merge_close_clusters(e, labels, 0.5).tolist() == [0, 0, 0, 2]
    assert merge_close_clusters(e, labels, 0.5, {0: {2}, 2: {0}}).tolist() == [0, 1, 1, 2]


def test_same_face_same_person_and_small_faces_get_a_reason(tmp_path, astronaut_rgb, untrained_model_path):
    import cv2

    from batchemo import analyze

    write_image(tmp_path / "a.jpg", astronaut_rgb)
    write_image(tmp_path / "b.jpg", np.roll(astronaut_rgb, 40, axis=1)[:, ::-1])  # moved and mirrored
    df = analyze(tmp_path, model=untrained_model_path, explain=False, progress=False)
    ok = df[df["status"] == "ok"].set_index(df[df["status"] == "ok"]["path"].str.rsplit("/", n=1).str[-1])
    assert ok.loc["a.jpg", "person"] == ok.loc["b.jpg", "person"] == "person_1"

    from batchemo.faces.embed import MIN_EMBED_SIDE, embed

    small = cv2.resize(astronaut_rgb, (128, 128), interpolation=cv2.INTER_AREA)  # her face is ~30 px here
    marks = np.array([[[70, 30], [64, 30], [50, 30], [56, 30], [60, 40]]], np.float32)
    vectors, reasons = embed(small, np.array([[45, 20, 30, 30]]), marks)
    assert np.isnan(vectors).all() and reasons == [f"face too small to recognise (30 px, needs {MIN_EMBED_SIDE})"]
    vectors, reasons = embed(small, np.array([[45, 20, 30, 30]]), None)
    assert reasons == ["no landmarks to align the face"]


def test_a_blurred_face_gets_no_embedding_and_says_why(astronaut_rgb):
    import cv2

    from batchemo.faces.detect import make_detector
    from batchemo.faces.embed import MIN_SHARPNESS, embed

    found = max(make_detector().detect(astronaut_rgb), key=lambda d: d.box.w)
    boxes = np.array([[found.box.x, found.box.y, found.box.w, found.box.h]])
    vectors, reasons = embed(astronaut_rgb, boxes, found.landmarks[None])
    assert np.isfinite(vectors).all() and reasons == [""]
    blurred = cv2.GaussianBlur(astronaut_rgb, (0, 0), 6)  # the same face, box and landmarks, out of focus
    vectors, reasons = embed(blurred, boxes, found.landmarks[None])
    assert np.isnan(vectors).all() and reasons[0].startswith("face too blurred to recognise (sharpness ")
    assert reasons[0].endswith(f"needs {MIN_SHARPNESS:.0f})")


def test_privacy_embeddings_only_when_asked_never_in_the_report(tmp_path, astronaut_rgb, untrained_model_path):
    from batchemo.cli import main

    write_image(tmp_path / "in" / "a.jpg", astronaut_rgb)
    (tmp_path / "known" / "Eileen").mkdir(parents=True)
    write_image(tmp_path / "known" / "Eileen" / "portrait.jpg", astronaut_rgb[:300, 100:450])
    base = ["run", str(tmp_path / "in"), "--model", str(untrained_model_path), "--no-explain", "-q"]
    assert main(base + ["--csv", str(tmp_path / "plain.csv"), "--report", str(tmp_path / "r.html"),
                        "--known-faces", str(tmp_path / "known")]) == 0
    plain = pd.read_csv(tmp_path / "plain.csv")
    assert not [c for c in plain.columns if c.startswith("emb_")]
    assert plain["person"].tolist() == ["Eileen"]
    html = (tmp_path / "r.html").read_text()
    assert "People" in html and "Eileen" in html and "emb_" not in html
    assert main(base + ["--json", str(tmp_path / "with.json"), "--embeddings"]) == 0
    emb = pd.read_json(tmp_path / "with.json")[[f"emb_{i}" for i in range(128)]].to_numpy()
    assert emb.shape == (1, 128) and 0.5 < np.linalg.norm(emb) < 2  # dlib's embeddings have norm ~1


@pytest.mark.slow
def test_the_shared_photos_group_into_their_people(photos, untrained_model_path):
    """Obama in five photos, Biden in two, two others once: quoted as pairwise precision and recall."""
    from batchemo import analyze

    truth = {("32bit.png", 0): "obama", ("obama.jpg", 0): "obama", ("obama-240p.jpg", 0): "obama",
             ("obama_partial_face.jpg", 0): "obama", ("two_people.jpg", 0): "obama",
             ("two_people.jpg", 1): "biden", ("biden.jpg", 0): "biden",
             ("justin.jpg", 0): "justin", ("lin-manuel-miranda.png", 0): "lin"}
    df = analyze(photos, model=untrained_model_path, explain=False, progress=False)
    ok = df[df["status"] == "ok"]
    got = {(p.rsplit("/", 1)[-1], int(i)): person for p, i, person in zip(ok["path"], ok["face_index"], ok["person"])}
    assert set(got) == set(truth)
    keys = sorted(truth)
    assert pairwise_scores([truth[k] for k in keys], [got[k] for k in keys]) == (1.0, 1.0)
    assert got[("obama.jpg", 0)] == "person_1" and got[("biden.jpg", 0)] == "person_2"


def test_embeddings_of_an_image_come_from_one_batch_in_face_order(astronaut_rgb):
    """All faces of an image go through dlib's network in one batch; each row is its own face's embedding,
    as embedding it alone gives, and a face without one keeps its place."""
    from batchemo.faces.detect import make_detector
    from batchemo.faces.embed import embed

    two = np.concatenate([astronaut_rgb, astronaut_rgb[:, ::-1]], axis=1)  # her face, then its mirror image
    found = make_detector("hog").detect(two)
    assert len(found) == 2
    boxes = np.array([(d.box.x, d.box.y, d.box.w, d.box.h) for d in found] + [(0, 0, 10, 10)])
    marks = np.stack([d.landmarks for d in found] + [found[0].landmarks])
    batch, reasons = embed(two, boxes, marks)
    assert reasons[:2] == ["", ""] and reasons[2].startswith("face too small") and np.isnan(batch[2]).all()
    for i in range(2):
        alone, _ = embed(two, boxes[i: i + 1], marks[i: i + 1])
        np.testing.assert_allclose(batch[i], alone[0], atol=1e-5)
    assert np.linalg.norm(batch[0] - batch[1]) > 1e-3  # two different chips, not one row twice


def _dlib_reference(rgb, boxes, marks):
    """dlib's own embeddings of the same faces, aligned the same way (what face_recognition computes)."""
    import dlib

    from batchemo.faces.detect import model_file

    rec = dlib.face_recognition_model_v1(model_file("embedding"))
    return np.asarray([np.asarray(v) for v in rec.compute_face_descriptor(rgb, _shapes(boxes, marks))], np.float32)


def _shapes(boxes, marks):
    """dlib's shapes of the 5 landmarks of each box, built here, independently of people.embed."""
    import dlib

    shapes = dlib.full_object_detections()
    for (x, y, w, h), m in zip(boxes, marks):
        shapes.append(dlib.full_object_detection(dlib.rectangle(int(x), int(y), int(x + w), int(y + h)),
                                                 [dlib.point(int(round(a)), int(round(b))) for a, b in m]))
    return shapes


def _faces_of(rgb):
    from batchemo.faces.detect import make_detector

    found = make_detector("hog").detect(rgb)
    if not found:
        return None, None
    return (np.array([(d.box.x, d.box.y, d.box.w, d.box.h) for d in found]),
            np.stack([d.landmarks for d in found]))


def test_shipped_embedding_network_gives_dlibs_embeddings(shared, astronaut_rgb):
    """The LiteRT flatbuffer is dlib's network (int8 weights): on real faces every embedding is within 0.02 of
    dlib's own and every pairwise distance within 0.02 (measured: 0.009 at most), far inside the 0.14 gap
    between people that the tolerance sits in; a wrong layer or layout would be off by ~1."""
    from batchemo.faces import embed as face_embedding
    from batchemo.faces.embed import embed
    from batchemo.sources.images import read_image

    assert face_embedding.engine() == "litert"
    ours, ref = [], []
    for rgb in [astronaut_rgb] + [read_image(p)[0] for p in sorted((shared / "media" / "photos").iterdir())[:6]]:
        boxes, marks = _faces_of(rgb)
        if boxes is None:
            continue
        vectors, reasons = embed(rgb, boxes, marks)
        keep = [i for i, r in enumerate(reasons) if not r]
        ours.append(vectors[keep])
        ref.append(_dlib_reference(rgb, boxes[keep], marks[keep]))
    ours, ref = np.concatenate(ours), np.concatenate(ref)
    assert len(ours) >= 5
    assert np.abs(ours - ref).max() < 0.02
    dist = lambda e: np.linalg.norm(e[:, None] - e[None], axis=2)  # noqa: E731
    assert np.abs(dist(ours) - dist(ref)).max() < 0.02


def test_without_litert_dlib_computes_the_same_embeddings(astronaut_rgb, monkeypatch):
    from batchemo.faces import embed as face_embedding
    from batchemo.faces.embed import embed

    boxes, marks = _faces_of(astronaut_rgb)
    fast, _ = embed(astronaut_rgb, boxes, marks)
    monkeypatch.setattr(face_embedding, "_litert", lambda: None)
    assert face_embedding.engine() == "dlib"
    slow, _ = embed(astronaut_rgb, boxes, marks)
    np.testing.assert_allclose(slow, _dlib_reference(astronaut_rgb, boxes, marks), atol=1e-6)
    assert np.abs(fast - slow).max() < 0.02


def test_dlib_network_file_is_read_layer_by_layer():
    """The reader walks dlib's whole serialization: the 29 convolutions, each with its affine, the pools,
    the 128-d output, and dlib's input means, ending exactly at the end of the file."""
    from batchemo.faces.detect import model_file
    from batchemo.faces.embedding_export import fold, read_dlib_net

    means, layers = read_dlib_net(model_file("embedding"))
    np.testing.assert_allclose(means, [122.782, 117.001, 104.298], atol=1e-3)
    kinds = [d["kind"] for d in layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add") == 14
    assert layers[0]["shape"] == (32, 3, 7, 7) and layers[-1]["n_out"] == 128
    ops = fold(layers)
    assert [op[0] for op in ops].count("conv") == 29 and ops[-1][1].shape == (256, 128)


@pytest.mark.training
def test_export_rebuilds_the_shipped_flatbuffer(tmp_path, astronaut_rgb):
    """``python -m batchemo.embedding_export`` makes the flatbuffer that ships: same outputs on real chips."""
    import dlib

    from batchemo.core.runtime import TFLiteForward
    from batchemo.faces.detect import model_file
    from batchemo.faces.embed import FLATBUFFER
    from batchemo.faces.embedding_export import export

    out = export(model_file("embedding"), tmp_path / "e.tflite")
    boxes, marks = _faces_of(astronaut_rgb)
    chip = np.asarray(dlib.get_face_chip(astronaut_rgb, _shapes(boxes, marks)[0], 150, 0.25), np.float32)[None]
    rebuilt = TFLiteForward(out.read_bytes(), threads=1)(chip)
    shipped = TFLiteForward(FLATBUFFER.read_bytes(), threads=1)(chip)
    np.testing.assert_allclose(rebuilt, shipped, atol=1e-6)


def test_many_tracks_are_clustered_on_a_nearest_neighbour_graph_with_the_same_people(monkeypatch):
    """Above KNN_ABOVE faces (an hour of video's tracks) each face links only its nearest neighbours: the
    same people as the full graph, without its million links."""
    from batchemo.people import cluster as C

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(9, 128))
    centres = 0.6 * centres / np.linalg.norm(centres, axis=1, keepdims=True)
    who = rng.integers(0, 9, 900)
    emb = (centres[who] + rng.normal(scale=0.012, size=(900, 128))).astype(np.float32)
    apart = [("v", float(i), float(i) + 0.5) for i in range(900)]
    full = C.name_people(emb, apart=apart)
    monkeypatch.setattr(C, "KNN_ABOVE", 100)
    edges = C._near_edges(emb, C.TOLERANCE)
    assert len(edges) <= 900 * (C.KNN + 1)
    perm = rng.permutation(900)  # whichever face found the other, a link is kept: the faces' order is moot
    again = {tuple(sorted((int(perm[a]), int(perm[b])))) for a, b in C._near_edges(emb[perm], C.TOLERANCE)}
    assert again == set(edges)
    assert C.name_people(emb, apart=apart) == full and len(set(full)) == 9
