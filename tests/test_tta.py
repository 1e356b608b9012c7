"""Test-time augmentation: the views are what they claim to be, and a read is their mean."""
import numpy as np
import pytest

from batchemo.emotions import tta


@pytest.fixture
def faces():
    return np.random.default_rng(0).random((5, 48, 48, 1), dtype=np.float32)


def test_a_quarter_turn_is_an_exact_rotation_of_the_pixel_grid(faces):
    # about the grid's centre, 90 degrees maps pixels onto pixels: the bilinear map must be the permutation
    assert np.allclose(tta.rotate(faces, 90), np.rot90(faces, 1, axes=(1, 2)), atol=1e-5)
    assert np.allclose(tta.rotate(faces, -90), np.rot90(faces, -1, axes=(1, 2)), atol=1e-5)
    assert np.array_equal(tta.rotate(faces, 0), faces)


def test_a_turn_matches_opencvs_bilinear_warp_about_the_centre(faces):
    """An independent implementation: OpenCV's fixed-point weights (1/32 steps) bound the difference."""
    cv2 = pytest.importorskip("cv2")
    for degrees in (5, -5, 12):
        m = cv2.getRotationMatrix2D((23.5, 23.5), degrees, 1.0)
        want = np.stack([cv2.warpAffine(f[..., 0], m, (48, 48), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE) for f in faces])[..., None]
        assert np.abs(tta.rotate(faces, degrees) - want).max() < 0.03


def test_opposite_turns_are_mirror_images_of_each_other(faces):
    """Why two turns keep a mirror-symmetric network's read mirror-symmetric."""
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])
    assert np.allclose(tta.rotate(mirrored, 5)[:, :, ::-1], tta.rotate(faces, -5), atol=1e-5)


def test_a_small_turn_keeps_the_brightness_and_moves_the_pixels(faces):
    turned = tta.rotate(faces, 5)
    assert turned.shape == faces.shape and turned.dtype == np.float32
    assert 0.0 <= turned.min() and turned.max() <= 1.0  # bilinear weights sum to one; edges replicated
    assert np.abs(turned - faces).mean() > 0.05


def test_a_read_is_the_mean_over_the_views_in_one_call(faces):
    calls = []

    def forward(x):
        calls.append(len(x))
        return x.reshape(len(x), -1)[:, :7] * 1.0

    for way in tta.WAYS:
        calls.clear()
        got = tta.read(forward, faces, way)
        views = tta.views(faces, way)
        assert calls == [len(faces) * len(views)] and len(views) == tta.passes(way)
        want = np.mean([v.reshape(len(v), -1)[:, :7] for v in views], axis=0)
        assert np.allclose(got, want, atol=1e-6)


def test_ways_are_named_or_bools_and_anything_else_is_a_clear_error():
    assert tta.way(None, "rot5") == "rot5" and tta.way(False, "rot5") == "none" and tta.way(True) == "hflip"
    with pytest.raises(ValueError, match="unknown test-time augmentation 'rot7'"):
        tta.way("rot7")
    assert "turned 5 degrees" in tta.describe("rot5") and "mirror-symmetric" in tta.describe("none", "mirror")
