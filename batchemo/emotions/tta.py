"""Test-time augmentation: the views of a face whose predictions a model's label is the mean of.

A model card names one way of reading a face (``preprocessing["tta"]``):

* ``none``: one pass on the face;
* ``hflip``: the face and its mirror image (two passes). A mirror-symmetric network (``arch mirror``) gives
  the same answer on both, so for it this second pass is wasted;
* ``rot5``: the face turned 5 degrees each way about its centre (two passes, no pass on the face itself).
  Training turns faces by up to 10 degrees, so both views are faces the network has learnt from; averaging
  them cancels some of its sensitivity to head tilt. On the validation split it added 0.1-1.0 points to
  each of three mirror models over their one pass; a plain network did better with the flip
  (``benchmarks/model_speed.py`` prints every way). A pair of opposite turns of a mirror-symmetric network
  is still mirror-symmetric: the mirror image of one view is the other view of the mirror image;
* ``turns``: the face and its turns by 5 and 10 degrees each way (five passes). The most accurate read
  measured (kd5: 71.2% on validation against 70.7% for ``rot5``), at 2.5x its cost: for a teacher, or for
  a user who labels faces without explaining them.

All views of a batch go through the network in one call, so a two-view read costs two passes of work but
one call's overhead. Rotation is a fixed sparse linear map of the 48x48 pixels (bilinear, edges
replicated), precomputed once, so it costs one sparse product per view and is the same in every code path.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np
from scipy import sparse

WAYS = ("none", "hflip", "rot5", "turns")
# a way in two words, for tables
SHORT = {"none": "one pass", "hflip": "flip TTA", "rot5": "two turns", "turns": "five turns"}
_TURNS = {"rot5": (5.0, -5.0), "turns": (0.0, 5.0, -5.0, 10.0, -10.0)}
_SIZE = 48


def way(tta: bool | str | None, card_way: str = "none") -> str:
    """The way to read a face: ``None`` is the card's, ``False`` one pass, ``True`` the flip (what a bool meant
    before there were other ways), a string itself (checked)."""
    if tta is None:
        tta = card_way
    if isinstance(tta, (bool, np.bool_)):
        tta = "hflip" if tta else "none"
    if tta not in WAYS:
        raise ValueError(f"unknown test-time augmentation {tta!r}: choose one of {', '.join(WAYS)}")
    return tta


def describe(tta: bool | str | None, architecture: str = "") -> str:
    """How a label reads a face, in words for a report."""
    tta = way(tta)
    if tta == "hflip":
        return "the mean of the face and its mirror image"
    if tta == "rot5":
        return "the mean of the face turned 5 degrees each way"
    if tta == "turns":
        return "the mean of the face and the face turned 5 and 10 degrees each way"
    if architecture == "mirror":
        return "one pass (the network is mirror-symmetric: one pass is its own flip average)"
    return "one pass"


def passes(tta: str) -> int:
    """Forward passes per face (multiply-adds per face are the network's times this)."""
    tta = way(tta)
    if tta == "none":
        return 1
    return 2 if tta == "hflip" else len(_TURNS[tta])


def angles(tta: str) -> tuple[float, ...]:
    """The turns (degrees, 0 = the face itself) a way averages over; () for ``none`` and ``hflip``."""
    return _TURNS.get(way(tta), ())


def turn_matrix(degrees: float) -> np.ndarray:
    """The turn as a dense float32 (48*48, 48*48) matrix, ``faces @ M``: the same pixels as ``rotate``."""
    return _rotation(float(degrees)).toarray()


def turn_entries(degrees: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The turn's sparse matrix R (``faces @ R``) as (int64 (nnz, 2) [input pixel, output pixel] indices in
    row-major order, float32 (nnz,) weights, shape): for a TensorFlow graph (training's reads, which cannot
    call scipy). Four weights per output pixel: a graph holds ~37 KB per turn, not a 21 MB dense matrix."""
    coo = _rotation(float(degrees)).tocoo()
    order = np.lexsort((coo.col, coo.row))
    idx = np.stack([coo.row[order], coo.col[order]], 1).astype(np.int64)
    return idx, coo.data[order].astype(np.float32), coo.shape


@lru_cache(maxsize=None)
def _rotation(degrees: float) -> sparse.csr_matrix:
    """The turn as a (48*48, 48*48) sparse matrix R, four weights a row: flat faces turn as ``faces @ R``.

    A sparse product is about 4x faster than four numpy gathers of the same weights, and the turn is then a
    few percent of a two-turn read rather than a seventh of it.
    """
    c = (_SIZE - 1) / 2.0  # the centre of the pixel grid: a mirror image maps it onto itself
    t = np.deg2rad(degrees)
    ys, xs = np.mgrid[0:_SIZE, 0:_SIZE].astype(np.float64)
    # where each output pixel comes from: the inverse turn about the centre
    sx = np.cos(t) * (xs - c) - np.sin(t) * (ys - c) + c
    sy = np.sin(t) * (xs - c) + np.cos(t) * (ys - c) + c
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    n = _SIZE * _SIZE
    rows, cols, vals = [], [], []
    for dy, dx, wt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        xi = np.clip(x0 + dx, 0, _SIZE - 1).astype(np.intp)  # beyond the edge: the edge pixel
        yi = np.clip(y0 + dy, 0, _SIZE - 1).astype(np.intp)
        rows.append((yi * _SIZE + xi).ravel())  # input pixel ...
        cols.append(np.arange(n))  # ... to output pixel
        vals.append(wt.ravel())
    r = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return r.astype(np.float32).tocsr()  # duplicates (clipped edge taps) are summed


def rotate(x: np.ndarray, degrees: float) -> np.ndarray:
    """(N, 48, 48, 1) float32 faces turned by ``degrees`` (counter-clockwise as shown) about their centre."""
    flat = np.asarray(x, np.float32).reshape(len(x), _SIZE * _SIZE)
    return np.asarray(flat @ _rotation(float(degrees)), np.float32).reshape(np.shape(x))


#: A view that is the face's mirror image (left-right), in ``view_spec``.
MIRROR = "mirror"


def view_spec(tta: str) -> tuple[float | str, ...]:
    """What each view of a way is, in order: 0.0 the face itself, a number a turn by that many degrees,
    ``MIRROR`` its mirror image. The one definition of the views, for ``views`` here (numpy) and for
    training's reads (TensorFlow ops): the two cannot drift apart."""
    tta = way(tta)
    if tta == "none":
        return (0.0,)
    if tta == "hflip":
        return (0.0, MIRROR)
    return _TURNS[tta]


def views(x, tta: str, mirror: Callable | None = None, turn: Callable | None = None) -> list:
    """The views of (N, 48, 48, 1) float32 faces that ``tta`` averages over (``view_spec``).

    ``mirror(x)`` and ``turn(x, degrees)`` apply one view; by default numpy's (a reversed width axis,
    ``rotate``); training passes TensorFlow ops computing the same pixels.
    """
    mirror = mirror or (lambda v: v[:, :, ::-1])
    turn = turn or rotate
    return [mirror(x) if s == MIRROR else turn(x, s) if s else x for s in view_spec(tta)]


def read(forward: Callable[[np.ndarray], np.ndarray], x: np.ndarray, tta: str) -> np.ndarray:
    """The mean of ``forward`` over the views of ``x``, all views in one call."""
    vs = views(x, tta)
    if len(vs) == 1:
        return forward(np.ascontiguousarray(vs[0]))
    out = forward(np.ascontiguousarray(np.concatenate(vs)))
    n = len(x)
    return sum(out[i * n: (i + 1) * n] for i in range(len(vs))) / np.float32(len(vs))
