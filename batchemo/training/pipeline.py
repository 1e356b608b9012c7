"""The input pipeline: in-graph augmentation, mixup/cutmix, training targets and the tf.data datasets.

Everything here runs as TensorFlow ops inside ``tf.data`` (TensorFlow is imported inside the functions).
A target row is (N, 14): the hard label, one-hot and label-smoothed (columns 0-6), then the teachers'
probabilities (columns 7-13, zeros without teachers), which ``loss.DistillLoss`` reads.
"""
from __future__ import annotations

import math

import numpy as np

from ..core.records import CLASSES
from ..emotions.tta import passes as tta_passes
from ..emotions.tta import turn_entries
from ..emotions.tta import views as tta_views
from ..sources.labelled import LabelledSet
from .recipe import Recipe


def augment(x, recipe: Recipe, seed: int, affine: bool = True):
    """Random affine (rotation, shear, zoom, shift) and horizontal flip of a float batch, as one TF op.

    One projective transform per image costs far less on a CPU than a chain of Keras preprocessing layers.
    ``affine=False`` leaves the geometry alone (teacher views are already transformed).
    """
    import tensorflow as tf

    n = tf.shape(x)[0]
    size = tf.cast(tf.shape(x)[1], tf.float32)
    u = lambda lo, hi: tf.random.uniform([n], lo, hi)  # noqa: E731
    out = random_affine(x, recipe) if affine else x
    if recipe.hflip:
        flip = tf.random.uniform([n, 1, 1, 1]) < 0.5
        out = tf.where(flip, tf.reverse(out, axis=[2]), out)
    if recipe.erase > 0:
        # Random erasing: hide a part of the face so no single region (say, the mouth) carries the class.
        side = tf.shape(x)[1]
        area = u(0.04, 0.25) * size * size
        aspect = tf.exp(u(math.log(0.5), math.log(2.0)))
        h = tf.minimum(tf.sqrt(area * aspect), size)
        w = tf.minimum(tf.sqrt(area / aspect), size)
        y0 = u(0.0, 1.0) * (size - h)
        x0 = u(0.0, 1.0) * (size - w)
        grid = tf.cast(tf.range(side), tf.float32)
        rows = (grid[None, :] >= y0[:, None]) & (grid[None, :] < (y0 + h)[:, None])
        cols = (grid[None, :] >= x0[:, None]) & (grid[None, :] < (x0 + w)[:, None])
        hit = rows[:, :, None] & cols[:, None, :] & (tf.random.uniform([n, 1, 1]) < recipe.erase)
        out = tf.where(hit[..., None], tf.fill(tf.shape(out), 0.5), out)
    return out


def random_affine(x, recipe: Recipe):
    """One random rotation . shear . zoom . shift per face of a float batch."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    size = tf.cast(tf.shape(x)[1], tf.float32)
    c = (size - 1.0) / 2.0
    u = lambda lo, hi: tf.random.uniform([n], lo, hi)  # noqa: E731
    theta = u(-1.0, 1.0) * recipe.rotation * math.pi / 180.0
    shear = u(-recipe.shear, recipe.shear)
    zoom = u(1.0 - recipe.zoom, 1.0 + recipe.zoom)
    tx = u(-recipe.shift, recipe.shift) * size
    ty = u(-recipe.shift, recipe.shift) * size
    cos, sin = tf.cos(theta), tf.sin(theta)
    # output -> input mapping: rotation . shear . (1/zoom), about the centre, then a shift
    m00 = cos / zoom
    m01 = (cos * shear - sin) / zoom
    m10 = sin / zoom
    m11 = (sin * shear + cos) / zoom
    a2 = c - m00 * c - m01 * c + tx
    b2 = c - m10 * c - m11 * c + ty
    zeros = tf.zeros_like(m00)
    transforms = tf.stack([m00, m01, a2, m10, m11, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST",
    )


#: How far an unreadable training face's target moves towards "any of the seven": a face whose typical
#: votes give its label 0.8 is then taught 0.4 (below the uncertain line), one of 0.5 about 0.29.
UNREADABLE_FLATTEN = 0.6


def unreadable(x, y, recipe: Recipe):
    """A share (``recipe.unreadable``) of a float batch made unreadable, one way each at random: darkened
    to 3-15% of its light, blurred (Gaussian, sigma 3.5 px of 48), reduced to 8x8 pixels, or its lower
    face covered as by a mask; their targets (both halves of the (N, 14) row) are flattened towards the
    uniform by UNREADABLE_FLATTEN, so the network learns to answer such faces with doubt."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    side = tf.shape(x)[1]
    hit = tf.random.uniform([n]) < recipe.unreadable
    kind = tf.random.uniform([n], 0, 4, tf.int32)
    dark = x * tf.random.uniform([n, 1, 1, 1], 0.03, 0.15)
    small = tf.image.resize(tf.image.resize(x, [8, 8], method="area"), [side, side], method="bilinear")
    rows = tf.cast(tf.range(side), tf.float32)[None, :, None, None]
    top = tf.random.uniform([n, 1, 1, 1], 0.5, 0.62) * tf.cast(side, tf.float32)
    shade = tf.random.uniform([n, 1, 1, 1], 0.3, 0.95) + tf.random.normal(tf.shape(x), stddev=0.02)
    covered = tf.where(rows >= top, shade, x)
    views = tf.stack([dark, _blur(x, 3.5), small, covered])  # (4, N, 48, 48, 1)
    chosen = tf.gather(tf.transpose(views, [1, 0, 2, 3, 4]), kind, batch_dims=1)
    x = tf.where(hit[:, None, None, None], chosen, x)
    k = len(CLASSES)
    hard, soft = y[:, :k], y[:, k:]
    has = tf.cast(tf.reduce_sum(soft, axis=1, keepdims=True) > 0.5, tf.float32)
    f = UNREADABLE_FLATTEN
    flat = tf.concat([hard * (1 - f) + f / k, (soft * (1 - f) + f / k) * has], axis=1)
    return x, tf.where(hit[:, None], flat, y)


def _blur(x, sigma: float):
    """Gaussian blur of a float (N, H, W, 1) batch, edges reflected."""
    import tensorflow as tf

    r = int(3 * sigma)
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    g = (g / g.sum()).astype(np.float32)
    padded = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
    out = tf.nn.conv2d(padded, g.reshape(-1, 1, 1, 1), 1, "VALID")
    return tf.nn.conv2d(out, g.reshape(1, -1, 1, 1), 1, "VALID")


def _beta(alpha: float):
    """One draw of Beta(alpha, alpha), from two gamma draws (TF has no beta sampler)."""
    import tensorflow as tf

    g1 = tf.random.gamma([], alpha)
    g2 = tf.random.gamma([], alpha)
    return g1 / (g1 + g2 + 1e-12)


def targets(hard, recipe: Recipe, teacher_probs=None):
    """(N, 14) training targets: ``hard`` ((N, 7): one-hot labels, or FER+ vote distributions), label-smoothed
    (columns 0-6), and the teachers' probabilities (columns 7-13, zeros when there are no teachers)."""
    import tensorflow as tf

    k = len(CLASSES)
    hard = tf.cast(hard, tf.float32) * (1.0 - recipe.label_smoothing) + recipe.label_smoothing / k
    soft = tf.zeros_like(hard) if teacher_probs is None else tf.cast(teacher_probs, tf.float32)
    return tf.concat([hard, soft], axis=1)


def mix_batch(x, y, recipe: Recipe):
    """Mixup or cutmix of a batch with its reverse (one lambda per batch), targets mixed alike.

    Returns (x, y, lam). With probability 1 - mix_prob (or both alphas 0) the batch passes unchanged, lam = 1.
    Cutmix pastes a box of the partner face covering 1 - lam of the area; lam is the area actually kept.
    """
    import tensorflow as tf

    one = tf.constant(1.0)
    if recipe.mixup <= 0 and recipe.cutmix <= 0:
        return x, y, one
    partner_x, partner_y = tf.reverse(x, [0]), tf.reverse(y, [0])
    do_mix = tf.random.uniform([]) < recipe.mix_prob

    def mixup():
        lam = _beta(recipe.mixup)
        return lam * x + (1 - lam) * partner_x, lam

    def cutmix():
        lam = _beta(recipe.cutmix)
        side = tf.shape(x)[1]
        size = tf.cast(side, tf.float32)
        cut = tf.sqrt(1.0 - lam) * size
        cy, cx = tf.random.uniform([], 0.0, size), tf.random.uniform([], 0.0, size)
        y0, y1 = tf.clip_by_value(cy - cut / 2, 0.0, size), tf.clip_by_value(cy + cut / 2, 0.0, size)
        x0, x1 = tf.clip_by_value(cx - cut / 2, 0.0, size), tf.clip_by_value(cx + cut / 2, 0.0, size)
        grid = tf.cast(tf.range(side), tf.float32) + 0.5
        rows = (grid >= y0) & (grid < y1)
        cols = (grid >= x0) & (grid < x1)
        box = tf.cast(rows[:, None] & cols[None, :], tf.float32)[None, :, :, None]
        kept = 1.0 - tf.reduce_mean(box)
        return x * (1.0 - box) + partner_x * box, kept

    if recipe.mixup > 0 and recipe.cutmix > 0:
        mixed, lam = tf.cond(tf.random.uniform([]) < 0.5, cutmix, mixup)
    elif recipe.cutmix > 0:
        mixed, lam = cutmix()
    else:
        mixed, lam = mixup()
    lam = tf.where(do_mix, lam, one)
    x = tf.where(do_mix, mixed, x)
    return x, lam * y + (1.0 - lam) * partner_y, lam


def datasets(train: LabelledSet, val: LabelledSet, recipe: Recipe, teacher_probs=None, views=None):
    """(train, validation) tf.data pipelines. With ``views`` ((N, K, 48, 48) uint8 teacher views, and
    ``teacher_probs`` (N, K, 7) the teachers' verdict on each), every epoch gives each face one of its views
    at random (its mirror image half the time: the teachers are flip-invariant), with that view's targets."""
    import tensorflow as tf

    def prep(x, y):
        return tf.cast(x, tf.float32)[..., None] / 255.0, y

    def aug(x, y):
        return augment(x, recipe, recipe.seed, affine=views is None), y

    def mix(x, y):
        x, y, _ = mix_batch(x, y, recipe)
        return x, y

    def hide(x, y):
        return unreadable(x, y, recipe)

    def pick(v, y, t):
        # after the shuffle: tf.data replays the same random draws every epoch, in batch order
        j = tf.random.uniform([tf.shape(v)[0]], 0, tf.shape(v)[1], tf.int32)
        return tf.gather(v, j, batch_dims=1), y, tf.gather(t, j, batch_dims=1)

    soft = np.zeros((len(train), len(CLASSES)), np.float32) if teacher_probs is None else teacher_probs
    tr = tf.data.Dataset.from_tensor_slices(
        (train.images if views is None else views, train.targets(), soft.astype(np.float32))
    ).shuffle(len(train), seed=recipe.seed, reshuffle_each_iteration=True).batch(recipe.batch_size)
    if views is not None:
        tr = tr.map(pick)
    tr = (
        tr.map(lambda x, y, t: (x, targets(y, recipe, t if teacher_probs is not None else None)))
        .map(prep)
        .map(aug, num_parallel_calls=tf.data.AUTOTUNE)
    )
    if recipe.unreadable > 0:
        tr = tr.map(hide, num_parallel_calls=tf.data.AUTOTUNE)
    tr = tr.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    # Validation: one-hot labels or the votes, no teachers: val_loss is the ordinary (or vote) cross-entropy.
    va = (
        tf.data.Dataset.from_tensor_slices((val.images, val.targets())).batch(512)
        .map(lambda x, y: (x, targets(y, Recipe())))
        .map(prep)
    )
    if recipe.fit_read:  # the read's views of each (augmented, mixed) face: one input each
        tr, va = (d.map(lambda x, y: (tuple(read_views(x, recipe.tta)), y), num_parallel_calls=tf.data.AUTOTUNE)
                  for d in (tr, va))
    return tr.prefetch(tf.data.AUTOTUNE), va.cache()


def read_views(x, way: str) -> list:
    """The views of a float (N, 48, 48, 1) batch that ``way`` averages, as TF ops: ``tta.views`` itself, with
    a turn as a sparse product with ``tta``'s own turn matrix (the same pixels as numpy's turn)."""
    import tensorflow as tf

    def turn(v, degrees):
        idx, weights, shape = turn_entries(degrees)
        r = tf.sparse.SparseTensor(idx, weights, shape)  # faces @ R: input pixel (row) -> output pixel (column)
        flat = tf.reshape(v, [tf.shape(v)[0], -1])
        return tf.reshape(tf.transpose(tf.sparse.sparse_dense_matmul(r, tf.transpose(flat), adjoint_a=True)),
                          tf.shape(v))

    return tta_views(x, way, mirror=lambda v: tf.reverse(v, axis=[2]), turn=turn)


def read_model(student, way: str):
    """``student`` read as the card reads a face: one input per view of ``way``, the mean of its answers.
    What ``fit_read`` trains; the student inside it is what ships."""
    import keras

    views = [keras.Input(student.input_shape[1:], name=f"view{i}") for i in range(tta_passes(way))]
    return keras.Model(views, keras.layers.Average(dtype="float32")([student(v) for v in views]), name="read")
