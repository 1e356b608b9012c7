"""The run report in a real browser (headless Chromium through selenium): filters select faces, no image is
broken, and no tag covers a face box. Skips, saying why, where Chromium, chromedriver or selenium is absent
(CI installs Debian's ``chromium`` and ``chromium-driver``: see .ci/run)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from batchemo.core.records import CLASSES

# A made-up run, so that what each filter must show is known: (photo, size, faces), a face being
# (x, y, w, h, label, confidence, person). "group" packs three faces edge to edge along the top, where
# no tag fits above them; "close" is one face filling its picture, whose tag cannot fit anywhere on it.
PHOTOS = [
    ("group.jpg", (420, 260), [(10, 4, 120, 150, "happy", 0.91, "person_1"),
                               (140, 4, 120, 150, "sad", 0.41, "person_2"),
                               (270, 4, 120, 150, "sad", 0.83, "person_1")]),
    ("pair.jpg", (400, 300), [(60, 80, 110, 130, "happy", 0.45, "person_2"), (200, 70, 120, 140, "neutral", 0.77, "")]),
    ("close.jpg", (300, 300), [(2, 2, 296, 296, "sad", 0.95, "person_2")]),
    ("empty.jpg", (320, 240), []),
]


def _browser():
    pytest.importorskip("selenium", reason="the browser test needs selenium (pip install selenium)")
    chrome = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if not chrome or not driver:
        pytest.skip("needs headless Chromium and chromedriver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,2000"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture(scope="module")
def browser():
    b = _browser()
    yield b
    b.quit()


def _probs(label: str, conf: float) -> np.ndarray:
    probs = np.full(len(CLASSES), (1 - conf) / (len(CLASSES) - 1), np.float32)
    probs[CLASSES.index(label)] = conf
    return probs


def _record(name: str, size: tuple[int, int], faces: list):
    """A photo's ``records.ImageResult`` as a worker returns it: plain thumbnail (arrays, nothing encoded)."""
    from batchemo.core.records import Faces, ImageResult

    w, h = size
    rng = np.random.default_rng(len(name))
    img = np.full((h, w, 3), 200, np.uint8) + rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
    rec = ImageResult(f"/photos/{name}", "no_faces", "no face found", width=w, height=h, thumbnail=img)
    if not faces:
        return rec
    n = len(faces)
    found = Faces(rec.path, np.array([f[:4] for f in faces], np.int64), np.ones(n, np.float32),
                  np.full((n, 48, 48), 120, np.uint8), probabilities=np.stack([_probs(f[4], f[5]) for f in faces]),
                  colour=np.full((n, 112, 112, 3), 120, np.uint8))
    return ImageResult(rec.path, "ok", width=w, height=h, faces=found, thumbnail=img)


@pytest.fixture(scope="module")
def made_up_report(tmp_path_factory) -> Path:
    from batchemo.people.refs import FaceRef
    from batchemo.pipeline.gallery import Gallery, RunStats
    from batchemo.pipeline.run import RunResult
    from batchemo.report.run import write_run_report

    stats, gallery, refs = RunStats(), Gallery(10, total=len(PHOTOS)), []
    for seq, (name, size, faces) in enumerate(PHOTOS):
        rec = _record(name, size, faces)
        stats.add(rec)
        gallery.offer(seq, rec)
        for i, f in enumerate(faces):
            refs.append(FaceRef(source=f"/photos/{name}", label=f[4], confidence=f[5], probabilities=_probs(f[4], f[5]),
                                embedding=np.zeros(128), face_index=i, person=f[6],
                                crop=np.full((48, 48), 120, np.uint8)))
    result = RunResult(stats, gallery, {"inputs": ["/photos"], "gallery": 10, "explain": False}, refs)
    return write_run_report(result, tmp_path_factory.mktemp("report") / "run.html")


def _click(browser, group: str, value: str) -> None:
    browser.find_element("css selector", f'#filters .fgroup[data-g="{group}"] button[data-f="{value}"]').click()


def _shown(browser) -> dict[str, set[int]]:
    """Visible cards by photo name, each with the indexes of its highlighted faces (all when none is)."""
    return browser.execute_script("""
        var out = {};
        document.querySelectorAll('#cards .card').forEach(function (c) {
          if (c.offsetParent === null) return;
          var name = c.querySelector('.fname').textContent, hits = [];
          var filtering = document.getElementById('cards').classList.contains('filtering');
          c.querySelectorAll('.fbox').forEach(function (b) {
            if (!filtering || b.classList.contains('hit')) hits.push(+b.getAttribute('data-i'));
          });
          out[name] = hits;
        });
        return out;""")


def _expected(emotion="all", person="all", doubt="all") -> dict[str, list[int]]:
    from batchemo.emotions.doubt import uncertain_label

    out = {}
    for name, _, faces in PHOTOS:
        if emotion == "no_faces":
            if not faces and person == doubt == "all":
                out[name] = []
            continue
        hits = [i for i, f in enumerate(faces) if emotion in ("all", f[4]) and person in ("all", f[6])
                and doubt in ("all", "1" if uncertain_label(f[5]) else "0")]
        if hits or (emotion == person == doubt == "all"):
            out[name] = hits
    return out


def _overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] \
        and b["y"] < a["y"] + a["height"]


def check_page(browser, url: str) -> None:
    """No broken image, and every tag clear of every face box of its picture (and inside it, or listed below)."""
    browser.get(url)
    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)")
    assert broken == [], f"broken images: {broken}"
    pics = browser.find_elements("css selector", "#cards .pic")
    assert pics
    tags_checked = 0
    for pic in pics:
        assert pic.get_attribute("data-laid") == "1", "tags were never laid out"
        boxes = [b.rect for b in pic.find_elements("css selector", ".fbox")]
        img = pic.find_element("css selector", "img").rect
        for tag in pic.find_elements("css selector", ".tag"):
            t = tag.rect
            assert t["width"] > 0 and t["height"] > 0
            hit = [b for b in boxes if _overlaps(t, b)]
            assert not hit, f"tag {tag.text!r} covers a face box: {t} over {hit}"
            assert img["x"] <= t["x"] and t["x"] + t["width"] <= img["x"] + img["width"] + 0.5
            assert img["y"] <= t["y"] and t["y"] + t["height"] <= img["y"] + img["height"] + 0.5
            tags_checked += 1
    tags = browser.find_elements("css selector", "#cards .tag")
    assert tags_checked and len(tags) == browser.execute_script("return document.querySelectorAll('.fbox').length")


def test_filters_select_faces_and_combine(browser, made_up_report):
    check_page(browser, made_up_report.as_uri())
    assert _shown(browser) == _expected()
    # the close-up's tag cannot fit on its picture: it is listed under it instead
    assert browser.execute_script("return document.querySelectorAll('.spill .tag').length") == 1
    steps = [("emotion", "sad", {"emotion": "sad"}), ("person", "person_2", {"emotion": "sad", "person": "person_2"}),
             ("doubt", "1", {"emotion": "sad", "person": "person_2", "doubt": "1"}),
             ("emotion", "all", {"person": "person_2", "doubt": "1"}),
             ("doubt", "0", {"person": "person_2", "doubt": "0"}),
             ("person", "all", {"doubt": "0"}), ("doubt", "all", {}), ("emotion", "no_faces", {"emotion": "no_faces"}),
             ("emotion", "happy", {"emotion": "happy"})]
    for group, value, state in steps:
        _click(browser, group, value)
        assert _shown(browser) == _expected(**state), f"after {group}={value}"
    # a face that does not match is dimmed in the list of faces too
    dim = browser.execute_script("return Array.from(document.querySelectorAll('.card:not(.hidden) .face.dim'))"
                                 ".map(f => f.getAttribute('data-label'))")
    assert dim and "happy" not in dim


def test_uncertain_labels_are_marked(browser, made_up_report):
    from batchemo.emotions.doubt import uncertain_label

    browser.get(made_up_report.as_uri())
    marked = browser.execute_script("return document.querySelectorAll('#cards .tag.unc-tag').length")
    assert marked == sum(uncertain_label(f[5]) for _, _, faces in PHOTOS for f in faces) > 0
    assert all(t.text.endswith("?") for t in browser.find_elements("css selector", "#cards .tag.unc-tag"))


@pytest.mark.slow
def test_real_run_report_in_a_browser(browser, photos, tmp_path):
    """The report of a real run on the shared photos: images intact, tags clear of faces, filters select."""
    out = tmp_path / "run.html"
    r = subprocess.run([sys.executable, "-m", "batchemo.cli", "run", str(photos), "--report", str(out), "--no-explain",
                        "-q"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    check_page(browser, out.as_uri())
    _click(browser, "emotion", browser.find_elements("css selector", '#filters .fgroup[data-g="emotion"] button')[1]
           .get_attribute("data-f"))
    label = browser.find_element("css selector", '#filters .fgroup[data-g="emotion"] button.on').get_attribute("data-f")
    hits = browser.execute_script("return Array.from(document.querySelectorAll('.card:not(.hidden) .face.hit'))"
                                  ".map(f => f.getAttribute('data-label'))")
    assert hits and set(hits) == {label}


@pytest.mark.slow
def test_statistics_bars_read_on_one_scale_and_the_heatmap_legend_is_beside_the_first_heatmap(browser, photos,
                                                                                                tmp_path):
    """A bar is as long as its share (happy at 47% fills 47% of its track, not the whole bar), and the
    legend of the heatmaps' colours is shown, not folded, in the card of the first heatmap."""
    out = tmp_path / "run.html"
    r = subprocess.run([sys.executable, "-m", "batchemo.cli", "run", str(photos), "--report", str(out),
                        "--lime-samples", "60", "-q"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    browser.get(out.as_uri())
    bars = browser.execute_script("""
        var panel = Array.from(document.querySelectorAll('.panel')).find(p => \
p.textContent.includes('Predicted emotion'));
        return Array.from(panel.querySelectorAll('.bar')).map(function (b) {
          var track = b.querySelector('.track').getBoundingClientRect().width, fill = 0;
          b.querySelectorAll('.fill').forEach(function (f) { fill += f.getBoundingClientRect().width; });
          return [b.querySelector('.val').textContent, fill / track];
        });""")
    assert len(bars) == 7 and any(share > 0 for _, share in bars)
    for text, share in bars:
        assert share == pytest.approx(float(text.rstrip("%")) / 100, abs=0.01), (text, share)
    legend = browser.find_element("css selector", "#heatmap-legend")
    assert legend.is_displayed() and "green" in legend.text and "red" in legend.text
    first = browser.execute_script("""
        var img = document.querySelector('#cards img[alt="LIME heatmap"]');
        return img && img.closest('.card') === document.getElementById('heatmap-legend').closest('.card');""")
    assert first
