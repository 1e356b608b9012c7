"""One run over photos and videos (analysis.run): records to the edge, shared people, known faces, one report."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import batchemo
from batchemo.core.records import ImageResult

from .conftest import write_image


def _video_of(astronaut_rgb, path, frames=6):
    """The astronaut at full size, sliding 8 px a frame: a face large enough to recognise."""
    from .test_video import write_video

    canvas = np.zeros((540, 512 + 8 * frames, 3), np.uint8)
    out = []
    for k in range(frames):
        f = canvas.copy()
        f[10:522, 8 * k: 512 + 8 * k] = astronaut_rgb
        out.append(f)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, out)


def _encoded(obj, seen=None) -> tuple[list[str], int]:
    """Where ``obj`` holds bytes (an encoded image), and how many arrays it holds (so a walk over nothing
    cannot pass)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return [], 0
    seen.add(id(obj))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return [type(obj).__name__], 0
    if isinstance(obj, np.ndarray):
        return ([] if obj.dtype != object else [f"object array {obj.shape}"]), 1
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    elif isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, (list, tuple)):
        items = list(enumerate(obj))
    else:
        return [], 0
    found, arrays = [], 0
    for name, value in items:
        where, n = _encoded(value, seen)
        found += [f"{name}.{w}" for w in where]
        arrays += n
    return found, arrays


def test_no_worker_output_holds_an_encoded_image(tmp_path, astronaut_rgb, untrained_model_path):
    from batchemo.explain.lime import LimeSettings
    from batchemo.pipeline.engine import RunSettings, process_image
    from batchemo.pipeline.video import video_timeline

    photo = write_image(tmp_path / "a.jpg", astronaut_rgb)
    rec = process_image(str(photo), RunSettings(model_path=str(untrained_model_path),
                                                lime=LimeSettings(num_samples=20)))
    assert isinstance(rec, ImageResult) and rec.status == "ok" and len(rec) == 1
    assert rec.faces.explanations is not None and rec.faces.colour.shape == (1, 112, 112, 3)
    where, arrays = _encoded(rec)
    assert where == [] and arrays >= 8  # boxes, crops, colour, probabilities, heatmap, ... and the thumbnail
    assert rec.thumbnail.dtype == np.uint8 and max(rec.thumbnail.shape[:2]) <= 400

    from batchemo.people.refs import assign
    from batchemo.pipeline.pictures import pictures_of

    clip = video_timeline(_video_of(astronaut_rgb, tmp_path / "v.avi", 24), str(untrained_model_path), fps=0,
                          lime_samples=20, progress=False)
    assert clip.status == "ok" and clip.filmstrip and clip.typical  # an untrained model's labels: no moment
    where, arrays = _encoded([clip.tracks, clip.moments, clip.filmstrip, clip.info, list(clip.chunks())])
    assert where == [] and arrays >= 8  # numbers only: the analysis keeps no picture
    assign(clip.tracks)
    pictures_of([clip], untrained_model_path, explain=1, lime_samples=20)
    pics = clip.pictures
    assert pics.keyframes and pics.filmstrip and any(k.explanation is not None for k in pics.keyframes)
    where, arrays = _encoded([pics.keyframes, pics.filmstrip])
    assert where == [] and arrays >= 3 * len(pics.keyframes)


def test_photos_and_videos_in_one_run_share_people(tmp_path, astronaut_rgb, untrained_model_path):
    """The same face in a photo and in a video is one person, in the table, the timeline and the API."""
    src = tmp_path / "in"
    write_image(src / "photos" / "a.jpg", astronaut_rgb)
    write_image(src / "photos" / "b.jpg", np.ascontiguousarray(astronaut_rgb[:, ::-1]))
    _video_of(astronaut_rgb, src / "clips" / "clip.avi")
    result = batchemo.run(src, model=untrained_model_path, explain=False, progress=False, fps=0)
    table, timeline = result.table, result.timeline
    assert table["status"].tolist() == ["ok", "ok", "video"]
    assert table["folder"].tolist() == ["photos", "photos", "clips"]
    assert len(timeline) == 6 and timeline["face_id"].nunique() == 1
    assert set(table.loc[table["status"] == "ok", "person"]) == {"person_1"}
    assert set(timeline["person"]) == {"person_1"}  # the video's face is the photos' person
    assert result.info["people"] == 1 and result.info["videos"] == 1 and result.info["images"] == 2
    df = batchemo.analyze(src, model=untrained_model_path, explain=False, progress=False)
    assert df["status"].tolist() == ["ok", "ok", "video"] and "1 face tracked" in df["reason"].iloc[2]
    assert df["person"].tolist()[:2] == ["person_1", "person_1"]


def test_known_faces_photos_without_a_face_are_skipped_not_fatal(tmp_path, astronaut_rgb, untrained_model_path):
    from batchemo.faces.detect import make_detector
    from batchemo.pipeline.engine import load_known_faces

    known = tmp_path / "known"
    write_image(known / "Eileen" / "portrait.jpg", astronaut_rgb[:300, 100:450])
    write_image(known / "Eileen" / "wall.jpg", np.full((200, 200, 3), 120, np.uint8))
    write_image(known / "Nobody" / "noise.png",
                np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    (known / "Nobody" / "broken.jpg").write_bytes(b"not a jpeg")
    faces = load_known_faces(known, make_detector("hog"))
    assert faces.names == ["Eileen"] and faces.embeddings.shape == (1, 128)
    skipped = {p.rsplit("/", 1)[-1]: why for p, why in faces.skipped}
    assert skipped["wall.jpg"] == skipped["noise.png"] == "no face to recognise"
    assert set(skipped) == {"wall.jpg", "noise.png", "broken.jpg"} and skipped["broken.jpg"]
    lines = []
    write_image(tmp_path / "in" / "a.jpg", astronaut_rgb)
    df = batchemo.analyze(tmp_path / "in", model=untrained_model_path, explain=False, progress=False,
                          known_faces=known, log=lines.append)
    assert df["person"].tolist() == ["Eileen"]
    assert sum("known faces: skipped" in line for line in lines) == 3
    only_noise = tmp_path / "known2"
    write_image(only_noise / "Nobody" / "wall.jpg", np.full((200, 200, 3), 120, np.uint8))
    with pytest.raises(ValueError, match="no usable face in any sub-folder"):
        batchemo.analyze(tmp_path / "in", model=untrained_model_path, explain=False, progress=False,
                         known_faces=only_noise)


def test_a_run_of_videos_alone_reports_the_videos(tmp_path, astronaut_rgb, untrained_model_path):
    """No "0 images ... 0.0 s" above an empty gallery: the heading and the tiles are about the video."""
    from batchemo.cli import main

    _video_of(astronaut_rgb, tmp_path / "in" / "clip.avi", frames=24)  # 3 s: 6 samples at 2 fps
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "in"), "--report", str(out / "r.html"), "--model", str(untrained_model_path),
                 "--no-explain", "-q"]) == 0
    html = (out / "r.html").read_text()
    assert "Emotions in 1 video<" in html and "images scanned" not in html and "<h2>Images</h2>" not in html
    assert 'id="video-1-person_1"' in html and "faces tracked in videos" in html
    assert (out / "r.timeline.csv").exists() and not list(out.glob("*.videos.html"))


def test_options_object_and_keywords_agree():
    opts = batchemo.RunOptions.of(None, explain=False, min_score=0.3)
    assert opts.explain is False and opts.detector_options == {"min_score": 0.3}
    assert batchemo.RunOptions.of(opts, jobs=2).detector_options == {"min_score": 0.3}
    haar = batchemo.RunOptions(detector="haar", detector_options={"min_neighbors": 4})
    assert haar.video_options().detector_options == {"scale_factor": 1.2, "min_neighbors": 4}
    assert haar.settings().detector_options == {"min_neighbors": 4}


def test_the_people_section_needs_no_second_pass_over_the_photos(tmp_path, astronaut_rgb, untrained_model_path,
                                                                  monkeypatch):
    """With no gallery card kept, each person's faces still come from what the run kept (48x48 crop and
    heatmap per face): every photo is processed exactly once."""
    from batchemo.cli import main
    from batchemo.pipeline import engine

    write_image(tmp_path / "in" / "a.jpg", astronaut_rgb)
    write_image(tmp_path / "in" / "b.jpg", np.ascontiguousarray(astronaut_rgb[:, ::-1]))
    calls, real = [], engine.process_image
    monkeypatch.setattr(engine, "process_image", lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    html = tmp_path / "r.html"
    assert main(["run", str(tmp_path / "in"), "--report", str(html), "--gallery", "0", "--lime-samples", "20",
                 "--model", str(untrained_model_path), "-q"]) == 0
    assert sorted(calls) == [str(tmp_path / "in" / "a.jpg"), str(tmp_path / "in" / "b.jpg")]
    people = html.read_text().split("<h2>People</h2>", 1)[1].split("<h2>", 1)[0]
    assert "person_1" in people and people.count('src="data:image/jpeg') >= 3  # face, and face + heatmap
    assert 'class="card"' not in html.read_text()


def test_cached_records_are_small_and_come_back_with_their_thumbnail(tmp_path, astronaut_rgb, untrained_model_path):
    write_image(tmp_path / "in" / "a.jpg", astronaut_rgb)
    args = dict(model=untrained_model_path, explain=False, progress=False, cache=tmp_path / "cache")
    first = batchemo.run(tmp_path / "in", **args)
    (entry,) = (tmp_path / "cache").rglob("*.pkl")
    assert entry.stat().st_size < 150_000  # crops and colour crops, not the 400 px thumbnail (470 KB)
    again = batchemo.run(tmp_path / "in", **args)
    assert again.info["cached"] == 1
    (a,), (b,) = first.gallery.cards(), again.gallery.cards()
    assert b.thumbnail is not None and b.thumbnail.shape == a.thumbnail.shape
    assert np.abs(b.thumbnail.astype(int) - a.thumbnail.astype(int)).mean() < 2
    np.testing.assert_array_equal(a.faces.colour, b.faces.colour)
