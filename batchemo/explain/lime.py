"""LIME for faces: which superpixels of the 48x48 crop pushed the classifier towards a class, how far to
trust that answer, and how to show it.

Three rules:

* **The heatmap explains what is shown.** The label a face gets comes from ``model.predict`` (the mean
  over the views the model card's test-time augmentation names, ``batchemo.tta``), so LIME explains that
  same classifier: every perturbation goes through the network in each of those views, averaged (a
  mirror-symmetric network, ``batchemo.training.mirror``, is its own flip average). The explained classifier's top
  class on the untouched face is checked against the shown label, face by face.
* **Each class gets its own fit.** lime's ``explain_instance`` keeps one R² per call (the last label
  fitted); we draw lime's perturbations once per face and call lime's own ``LimeBase`` fit once per
  explained class, so every class keeps its own weights *and* its own R². The samples are antithetic
  pairs (a random half of the superpixels, then the other half: ``LimeSettings.sampling``), which makes
  the fit, on the shipped model read with two turns, as stable across seeds at 300 samples as lime's own
  design at 1000 (``benchmarks/lime_speed.py --curve``).
* **Every explanation is scored.** Deletion and insertion AUC (RISE, Petsiuk et al. 2018): hide the
  superpixels in LIME's order (most supporting first) and watch the class probability fall; reveal them in
  that order on a hidden face and watch it rise; compare with a random order on the same face.

Cost: the samples (``num_samples``, chosen from the fidelity curve of ``benchmarks/lime_speed.py --curve``)
go to the network in one batch, through an int8 TensorFlow Lite copy of it when that copy gives the shown
class on the face (``batchemo.fastpath``, ~3x cheaper per pass); the faithfulness curves add one batch of
~44 images. A two-view model (flip or two turns) costs two passes per image; a one-pass model, one.
Explanations are seeded: the same face and settings give the same heatmap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..core.records import Explanation
from ..emotions.model import CLASSES, EmotionModel, preprocess
from ..emotions.tta import read as read_views
from ..emotions.tta import way as tta_way

#: LIME perturbations per explanation by default: the fewest as stable across seeds as 1000 were (with the
#: shipped model as its card reads a face: 300 two-turn reads, 0.790 against 0.784; 250 gave 0.759).
LIME_SAMPLES = 300


@dataclass
class LimeSettings:
    """How LIME explains a face. The defaults are measured (see ``benchmarks/lime_speed.py``)."""

    num_samples: int = LIME_SAMPLES  # from the fidelity curve (benchmarks/lime_speed.py --curve)
    num_features: int = 10  # superpixels outlined in ``boundaries``
    positive_only: bool = False
    hide_color: float | None = None  # lime's default: a hidden superpixel takes its mean colour
    seed: int = 0
    batch_size: int | None = None  # None: every perturbation in one forward call
    # Superpixels. lime's default (quickshift, max_dist=200) finds 1-3 segments in a 48x48 face, which
    # explains nothing; SLIC gives ~45 compact, edge-following segments (eyes, brows, mouth corners).
    n_segments: int = 50
    compactness: float = 20.0
    tta: bool | str | None = None  # None: as the model card says, i.e. the classifier whose label is shown
    quantized: bool = True  # int8 TensorFlow Lite forward passes where they give the shown label
    faithfulness: bool = True  # deletion/insertion AUC on every explanation
    faithfulness_steps: int = 8  # points on each deletion/insertion curve (plus the two ends)
    random_orders: int = 2  # random superpixel orders averaged for the baseline
    # "halves": every sample keeps a random half of the superpixels and is followed by its complement
    # (antithetic pairs, as for KernelSHAP in Covert & Lee 2021). Every superpixel is on in exactly half
    # the samples, all samples get the same kernel weight, and each pair's even-order interactions cancel
    # out of the linear fit: at 300 samples as stable across seeds as lime's own design at ~550.
    # "lime": lime_image's own design (uniform on/off per superpixel), sample for sample.
    sampling: str = "halves"

    def segmenter(self):
        """lime's own SLIC wrapper with these settings, for comparing with lime (needs ``lime``, a test
        dependency: batchemo's own ``segment`` computes the same segments without it)."""
        from lime.wrappers.scikit_image import SegmentationAlgorithm

        return SegmentationAlgorithm(
            "slic", n_segments=self.n_segments, compactness=self.compactness, start_label=0
        )


# ---------------------------------------------------------------- the explained classifier
Classifier = Callable[[np.ndarray], np.ndarray]  # uint8 (N, 48, 48) gray faces -> (N, 7) probabilities


class ViewClassifier:
    """A classifier of uint8 gray faces, averaged over the views its test-time augmentation names.

    ``clf(gray)``: the mean of the network over the views of each face (``batchemo.tta``: none, the face
    and its mirror image, or two opposite turns). ``exact``, when given, computes the same thing the way
    ``model.predict`` does, to the last bit.
    """

    def __init__(self, forward: Callable[[np.ndarray], np.ndarray], tta: str,
                 exact: Callable[[np.ndarray], np.ndarray] | None = None):
        self.forward, self.tta, self._exact = forward, tta_way(tta), exact

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        x = preprocess(np.asarray(gray))
        if self._exact is not None:
            return self._exact(x)
        return read_views(self.forward, x, self.tta)  # every view of every face in one pass


def float_classifier(model: EmotionModel, tta: bool | str | None = None, batch_size: int = 4096) -> ViewClassifier:
    """The float network exactly as ``model.predict`` computes it (``tta=None``: as the model card says)."""
    tta = tta_way(tta, model.tta)
    return ViewClassifier(lambda x: model.predict_scaled(x, batch_size=batch_size, tta=False), tta,
                          exact=lambda x: model.predict_scaled(x, batch_size=batch_size, tta=tta))


_READS = {"hflip": ", flip-averaged", "rot5": ", mean of two 5° turns"}


def explained_classifier(
    model: EmotionModel, crop: np.ndarray, settings: LimeSettings | None = None, shown: int | None = None
) -> tuple[ViewClassifier, str, int]:
    """(classifier LIME will query, its description, the shown class index) for one face.

    The shown class is ``model.predict``'s (``shown``, when the caller has just computed it). With
    ``settings.quantized`` the int8 copy is used only when its top class on this face is the shown one;
    otherwise (or with ``tta=False``, which explains the one-pass network on purpose) the float network.
    """
    s = settings or LimeSettings()
    tta = tta_way(s.tta, model.tta)
    if shown is None:
        shown = int(np.argmax(model.predict(np.asarray(crop, np.uint8)[None])[0]))
    reads = _READS.get(tta, ", mirror-symmetric" if model.card.architecture == "mirror" else "")
    if s.quantized:
        from ..emotions.fastpath import quantized_forward

        fwd = quantized_forward(model)
        if fwd is not None:
            clf = ViewClassifier(fwd, tta)
            if int(np.argmax(clf(np.asarray(crop, np.uint8)[None])[0])) == shown:
                return clf, f"int8 TFLite{reads}", shown
    return float_classifier(model, tta), f"float{reads}", shown


def classifier_fn(model: EmotionModel, tta: bool | str | None = None):
    """lime's interface: RGB perturbations of a grayscale crop (channel 0 is the gray image) -> probabilities."""
    clf = float_classifier(model, tta)

    def predict(images: np.ndarray) -> np.ndarray:
        gray = np.asarray(images)[..., 0]
        if gray.dtype != np.uint8:
            gray = np.clip(gray, 0, 255).astype(np.uint8)
        return clf(gray)

    return predict


# ---------------------------------------------------------------- superpixels and perturbations
def segment(crop: np.ndarray, settings: LimeSettings | None = None) -> np.ndarray:
    """SLIC superpixels of a face as lime's ``SegmentationAlgorithm("slic", ...)`` computes them (int (48, 48),
    ids from 0), without importing lime (whose scikit-learn import costs seconds at start-up)."""
    from skimage.segmentation import slic

    s = settings or LimeSettings()
    rgb = np.repeat(np.asarray(crop, np.uint8)[..., None], 3, axis=2)  # skimage's gray2rgb
    return np.asarray(slic(rgb, n_segments=s.n_segments, compactness=s.compactness, start_label=0))


def hidden_face(crop: np.ndarray, segments: np.ndarray, hide_color: float | None = None) -> np.ndarray:
    """The face with every superpixel hidden, as lime hides them (its mean, truncated to uint8)."""
    gray = np.asarray(crop, np.uint8)
    if hide_color is not None:
        return np.full_like(gray, np.uint8(hide_color))
    n = int(segments.max()) + 1
    sums = np.bincount(segments.ravel(), gray.ravel().astype(np.float64), n)
    counts = np.maximum(np.bincount(segments.ravel(), minlength=n), 1)
    return (sums / counts)[segments].astype(np.uint8)


def perturb(crop: np.ndarray, hidden: np.ndarray, segments: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """uint8 (N, 48, 48): face k shows superpixel j where ``keep[k, j]`` and its hidden version elsewhere."""
    return np.where(np.asarray(keep, bool)[:, segments], np.asarray(crop, np.uint8)[None], hidden[None])


# ---------------------------------------------------------------- faithfulness (RISE deletion/insertion)
def _step_counts(n_segments: int, steps: int) -> np.ndarray:
    return np.round(np.linspace(0, n_segments, steps + 1)).astype(int)


def curve_masks(orders: Sequence[np.ndarray], n_segments: int, steps: int) -> np.ndarray:
    """Keep-masks (len(orders) * 2 * (steps + 1), n_segments): per order, its deletion then insertion curve."""
    counts = _step_counts(n_segments, steps)
    masks = []
    for order in orders:
        order = np.asarray(order)
        for deleting in (True, False):
            for c in counts:
                keep = np.full(n_segments, deleting)
                keep[order[:c]] = not deleting
                masks.append(keep)
    return np.array(masks, bool)


def curves(
    classifier: Classifier, crop: np.ndarray, segments: np.ndarray, hidden: np.ndarray,
    orders: Sequence[np.ndarray], steps: int = 8,
) -> np.ndarray:
    """(len(orders), 2, steps + 1, 7) probabilities along each order's deletion and insertion curve.

    All curves of a face in one forward call; images that repeat (the untouched and the fully hidden face
    open and close every curve) are computed once.
    """
    n = int(segments.max()) + 1
    masks = curve_masks(orders, n, steps)
    uniq, inverse = np.unique(masks, axis=0, return_inverse=True)
    probs = classifier(perturb(crop, hidden, segments, uniq))[np.asarray(inverse).ravel()]
    return probs.reshape(len(orders), 2, steps + 1, -1)


def auc(curve: np.ndarray) -> float:
    """Area under a probability curve sampled at equal fractions of the superpixels (x from 0 to 1)."""
    curve = np.asarray(curve, np.float64)
    return float(np.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


def lime_order(weights: dict[int, float], n_segments: int) -> np.ndarray:
    """Superpixels from the most supporting to the most opposing (ties and unweighted ones last, by id)."""
    w = np.full(n_segments, -np.inf)
    for seg, v in weights.items():
        w[seg] = v
    return np.argsort(-w, kind="stable")


def random_orders(n_segments: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.RandomState(seed + 7919)  # independent of lime's sample stream for the same seed
    return [rng.permutation(n_segments) for _ in range(count)]


# ---------------------------------------------------------------- LIME
def lime_samples(n_segments: int, num_samples: int, seed: int, sampling: str = "lime") -> np.ndarray:
    """Which superpixels each perturbation keeps (num_samples, n_segments); the first row is the face itself.

    ``lime``: lime_image's design for this seed, uniform on/off per superpixel (sample for sample what
    ``explain_instance`` draws). ``halves``: rows that keep a random half of the superpixels, each followed
    by its complement; the second row hides everything.
    """
    rs = np.random.RandomState(seed)  # lime: check_random_state(random_state).randint(0, 2, ...)
    if sampling == "lime":
        data = rs.randint(0, 2, num_samples * n_segments).reshape((num_samples, n_segments))
    elif sampling == "halves":
        rows = (num_samples + 1) // 2  # each row keeps a random half of the superpixels, then its complement
        half = (np.argsort(rs.random_sample((rows, n_segments)), 1) < n_segments // 2).astype(int)
        data = np.stack([half, 1 - half], 1).reshape(-1, n_segments)[:num_samples]
    else:
        raise ValueError(f"unknown sampling {sampling!r}: 'halves' or 'lime'")
    data[0, :] = 1
    if sampling == "halves" and len(data) > 1:
        data[1, :] = 0  # the complement of the face: everything hidden
    return data


def _kernel(distances: np.ndarray, width: float = 0.25) -> np.ndarray:
    """lime_image's sample weights: an exponential kernel of the cosine distance, width 0.25."""
    return np.sqrt(np.exp(-(distances ** 2) / width ** 2))


def cosine_distances(data: np.ndarray) -> np.ndarray:
    """Cosine distance of each sample (rows of 0/1) to the first, as scikit-learn's ``pairwise_distances``
    computes it for lime (an all-zero row has norm 1 there, so its distance is 1)."""
    x = np.asarray(data, np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0] = 1.0
    unit = x / norms[:, None]
    return np.clip(1.0 - unit @ unit[0], 0.0, 2.0)


def ridge_fit(data: np.ndarray, target: np.ndarray, weights: np.ndarray, alpha: float = 1.0):
    """lime's local model, ``Ridge(alpha=1)`` with sample weights on every superpixel, in numpy (scikit-learn's
    centring, scaling and Cholesky solve): (intercept, [(superpixel, weight)] by decreasing |weight|,
    weighted R², prediction on the face itself)."""
    x, y, w = np.asarray(data, np.float64), np.asarray(target, np.float64), np.asarray(weights, np.float64)
    x_mean, y_mean = np.average(x, axis=0, weights=w), np.average(y, weights=w)
    root = np.sqrt(w)
    xc, yc = (x - x_mean) * root[:, None], (y - y_mean) * root
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    intercept = float(y_mean - x_mean @ coef)
    pred = x @ coef + intercept
    total = np.sum(w * (y - y_mean) ** 2)
    score = 1.0 - np.sum(w * (y - pred) ** 2) / total if total > 0 else (1.0 if np.allclose(y, pred) else 0.0)
    ranked = sorted(zip(range(x.shape[1]), coef), key=lambda t: np.abs(t[1]), reverse=True)
    return intercept, ranked, float(score), pred[:1]


def image_and_mask(gray: np.ndarray, segments: np.ndarray, ranked, num_features: int, positive_only: bool):
    """lime's ``ImageExplanation.get_image_and_mask`` (hide_rest=False) for a gray face: the RGB face with the
    ``num_features`` strongest superpixels tinted (green for, red against) and their mask (1 for, -1 against)."""
    image = np.repeat(np.asarray(gray, np.uint8)[..., None], 3, axis=2)
    temp, mask = image.astype(np.float64), np.zeros(segments.shape, segments.dtype)
    if positive_only:
        for f in [f for f, w in ranked if w > 0][:num_features]:
            mask[segments == f] = 1
        return temp, mask
    for f, w in ranked[:num_features]:
        mask[segments == f] = -1 if w < 0 else 1
        temp[segments == f, 0 if w < 0 else 1] = image.max()
    return temp, mask


def _sample_probabilities(clf: Classifier, images: np.ndarray, s: LimeSettings) -> np.ndarray:
    step = s.batch_size or len(images)
    return np.concatenate([clf(images[i: i + step]) for i in range(0, len(images), step)])


def explain_face(
    model: EmotionModel,
    crop: np.ndarray,
    labels: Sequence[str] | None = None,
    settings: LimeSettings | None = None,
    shown: int | None = None,
) -> dict[str, Explanation]:
    """LIME explanations of one uint8 48x48 face, keyed by class name, one per class in ``labels``.

    ``labels`` names the classes to explain (e.g. predicted and true class in an audit); None explains the
    shown class only. ``shown``: the index of the class the face is labelled with, when the caller has it
    (``classify`` does), so that it is not computed twice.
    """
    from skimage.segmentation import mark_boundaries

    s = settings or LimeSettings()
    gray = np.asarray(crop, np.uint8)
    clf, described, shown = explained_classifier(model, gray, s, shown)
    wanted = [shown] if not labels else [model.classes.index(lb) for lb in labels]
    wanted = list(dict.fromkeys(wanted))

    segments = segment(gray, s)
    n_seg = int(segments.max()) + 1
    hidden = hidden_face(gray, segments, s.hide_color)
    data = lime_samples(n_seg, s.num_samples, s.seed, s.sampling)
    probs = _sample_probabilities(clf, perturb(gray, hidden, segments, data), s)
    kernel = _kernel(cosine_distances(data))  # lime_image's distances and kernel (width 0.25)
    # lime's LimeBase fit, every superpixel kept (feature_selection="none"), one fit per explained class
    fits = {idx: ridge_fit(data, probs[:, idx], kernel) for idx in wanted}

    faith: dict[int, tuple[float, float, float, float]] = {}
    if s.faithfulness:
        rand = random_orders(n_seg, s.random_orders, s.seed)
        orders = [lime_order(dict(fits[i][1]), n_seg) for i in wanted] + rand
        c = curves(clf, gray, segments, hidden, orders, s.faithfulness_steps)
        for k, idx in enumerate(wanted):
            r = c[len(wanted):, :, :, idx]
            faith[idx] = (auc(c[k, 0, :, idx]), auc(c[k, 1, :, idx]),
                          float(np.mean([auc(x) for x in r[:, 0]])), float(np.mean([auc(x) for x in r[:, 1]])))

    out: dict[str, Explanation] = {}
    for idx in wanted:
        weights = {int(seg): float(w) for seg, w in fits[idx][1]}
        lut = np.zeros(n_seg, np.float32)
        for seg, w in weights.items():
            lut[seg] = w
        temp, mask = image_and_mask(gray, segments, fits[idx][1], s.num_features, s.positive_only)
        boundaries = (mark_boundaries(temp / 255.0, mask) * 255).astype(np.uint8)
        d, i, dr, ir = faith.get(idx, (float("nan"),) * 4)
        out[model.classes[idx]] = Explanation(
            label=model.classes[idx], segments=segments, weights=weights, heatmap=lut[segments],
            boundaries=boundaries, score=fits[idx][2],
            deletion_auc=d, insertion_auc=i, deletion_auc_random=dr, insertion_auc_random=ir,
            classifier=described, num_samples=s.num_samples,
        )
    return out


def explain_faces(
    model: EmotionModel,
    crops: Sequence[np.ndarray],
    labels: Sequence[Sequence[str] | None] | None = None,
    settings: LimeSettings | None = None,
    n_jobs: int = 2,
    shown: Sequence[int] | None = None,
) -> list[dict[str, Explanation]]:
    """Explain many faces on ``n_jobs`` threads; ``labels[i]`` names the classes to explain for face i,
    ``shown[i]`` (optional) is the index of the class it is labelled with.

    Threads, not processes: TensorFlow (and TensorFlow Lite) release the GIL during a forward pass, so two
    explanations overlap on two cores while sharing one loaded model. A plain thread pool, not joblib's:
    inside a Dask worker joblib hands its batches to Dask, which cannot serialise them, and the run hangs.
    """
    from concurrent.futures import ThreadPoolExecutor

    labels = labels or [None] * len(crops)
    shown = [None] * len(crops) if shown is None else [int(k) for k in shown]
    if not len(labels) == len(shown) == len(crops):
        raise ValueError(f"{len(crops)} faces but {len(labels)} label lists and {len(shown)} shown classes")
    if n_jobs == 1 or len(crops) <= 1:
        return [explain_face(model, c, lb, settings, k) for c, lb, k in zip(crops, labels, shown)]
    if settings is None or settings.quantized:
        from ..emotions.fastpath import quantized_forward

        quantized_forward(model)  # build it once, before the threads race for it
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        return list(pool.map(lambda c, lb, k: explain_face(model, c, lb, settings, k), crops, labels, shown))


__all__ = ["LimeSettings", "explain_face", "explain_faces", "explained_classifier", "CLASSES"]
