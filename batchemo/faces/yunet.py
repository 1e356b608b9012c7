"""YuNet, libfacedetection's face detector, on LiteRT: the same CNN on every platform LiteRT has wheels for.

The network is OpenCV Zoo's ``face_detection_yunet_2023mar.onnx`` (MIT, Shiqi Yu; sha256 8f2383e4dd3c...),
rebuilt in Keras and converted to TFLite flatbuffers by ``yunet_export``: ``models/yunet_2023mar.tflite``
(249 KB, float32) and the default ``models/yunet_2023mar.int8.tflite`` (139 KB, int8 inside, float in and
out: 0.7-0.8 times the time, as many faces found on the project's sets, docs/detection.md). Both are
decoded exactly as OpenCV's ``cv::FaceDetectorYN`` does (face_detect.cpp): the image padded at the bottom
and right to multiples of 32, per stride s in (8, 16, 32) and grid cell (r, c) a score sqrt(cls * obj), a
box ((c + dx) s, (r + dy) s, exp(dw) s, exp(dh) s) about its centre and 5 landmarks, then OpenCV's
``NMSBoxes`` on integer boxes. On the shared photos and clip frames the float32 network's faces, boxes
(1.7e-4 px) and scores (3e-6) equal ``cv2.FaceDetectorYN``'s on the ONNX.

Big images are searched in tiles (``TILE`` px with ``OVERLAP`` px of overlap) so that one interpreter of one
size serves every image and its memory (about 90 bytes per input pixel) stays bounded, and a face cut by a
tile's edge is whole in its neighbour; the boxes of all tiles go through one NMS.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

#: The shipped flatbuffers by precision, and the strides of the network's three heads.
FLATBUFFERS = {"int8": Path(__file__).parent / "models" / "yunet_2023mar.int8.tflite",
               "float32": Path(__file__).parent / "models" / "yunet_2023mar.tflite"}
STRIDES = (8, 16, 32)
#: Side of the square tiles a big image is searched in, and their overlap, pixels (multiples of 32).
TILE, OVERLAP = 640, 128
#: Images searched without a second look after which its interpreters are let go.
BAND_IDLE = 8
#: Longer side, px, a doubtful box is scaled to in the crop that confirms it (``YuNet.confirm``).
CONFIRM_SIDE = 64
#: Columns of a (N, 15) detection holding x and y coordinates (box corner, 5 landmarks): what a tile's
#: offset moves (not w and h, columns 2 and 3).
_XS, _YS = [0, 4, 6, 8, 10, 12], [1, 5, 7, 9, 11, 13]


class YuNet:
    """``detect(rgb) -> (N, 15) float32``: x, y, w, h, 5 landmarks (x, y), score, in pixels of ``rgb``.

    ``score_threshold``: least score kept; ``nms_threshold``: IoU over which the lower-scored of two
    boxes is dropped; ``threads``: LiteRT threads; ``precision``: the flatbuffer run, 'int8' or 'float32'.
    One interpreter per padded input size is kept (the four last used: tiles, the shrunk whole image, a
    second look's band and the confirming crop), so frames or tiles of one size cost no reallocation.
    """

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, threads: int = 1,
                 flip: bool = False, zoom: float = 1.0, precision: str = "int8"):
        """``flip``: search the mirror image too (test-time flip); ``zoom``: search a copy enlarged this
        many times too (small faces), both merged by one NMS."""
        self.score_threshold, self.nms_threshold, self.threads = float(score_threshold), float(nms_threshold), threads
        self.flip, self.zoom = bool(flip), float(zoom)
        if precision not in FLATBUFFERS:
            raise ValueError(f"precision must be one of {', '.join(FLATBUFFERS)}, not {precision!r}")
        self.precision = precision
        self._interps: dict[tuple[int, int], tuple] = {}
        # sizes made for second looks, and images searched since the last: a band's interpreter (10-40 MB)
        # is let go after BAND_IDLE images without one, so a rare small face in a long video costs nothing
        # for the rest of it
        self._band_sizes: set[tuple[int, int]] = set()
        self._since_band = 0

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """Every face of an RGB uint8 (H, W, 3) image, with the flip and zoom searches asked for."""
        import cv2

        self._since_band += 1
        if self._since_band > BAND_IDLE and self._band_sizes:
            for key in self._band_sizes:
                self._interps.pop(key, None)
            self._band_sizes.clear()
        found = [self._search(rgb)]
        if self.flip:
            mirrored = self._search(np.ascontiguousarray(rgb[:, ::-1]))
            w = rgb.shape[1]
            mirrored[:, _XS] = w - mirrored[:, _XS]
            mirrored[:, 0] -= mirrored[:, 2]  # the box's left edge was its right one
            mirrored[:, 4:14] = mirrored[:, [6, 7, 4, 5, 8, 9, 12, 13, 10, 11]]  # eyes and mouth corners swap
            found.append(mirrored)
        if self.zoom > 1:
            big = cv2.resize(rgb, None, fx=self.zoom, fy=self.zoom, interpolation=cv2.INTER_LINEAR)
            zoomed = self._search(big)
            zoomed[:, :14] /= self.zoom
            found.append(zoomed)
        return self._nms(np.concatenate(found)) if len(found) > 1 else found[0]

    def _search(self, rgb: np.ndarray) -> np.ndarray:
        """One search of an image. Beyond TILE pixels: the whole image shrunk to TILE (its large faces) and
        TILE-sized tiles at full size (its small ones; a box on a tile's inner edge is left to the neighbour
        that holds its face whole), one NMS over all."""
        import cv2

        h, w = rgb.shape[:2]
        if max(h, w) <= TILE:
            return self._nms(self._decode(rgb))
        k = TILE / max(h, w)
        small = cv2.resize(rgb, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        whole = self._decode(small)
        whole[:, :14] /= k
        return self._nms(np.concatenate([whole, self._tiles(rgb)]))

    def search_rows(self, rgb: np.ndarray, y0: int, y1: int, zoom: float) -> np.ndarray:
        """Faces found in rows ``y0:y1`` of ``rgb`` enlarged ``zoom`` times (a second look where faces are
        small), in pixels of ``rgb``: tiles only, as the band holds no face larger than a tile."""
        import cv2

        band = cv2.resize(np.ascontiguousarray(rgb[y0:y1]), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
        self._since_band = 0
        before = set(self._interps)
        faces = self._nms(self._tiles(band))
        self._band_sizes |= set(self._interps) - before
        faces[:, :14] /= zoom
        faces[:, _YS] += y0
        return faces

    def confirm(self, rgb: np.ndarray, box) -> np.ndarray | None:
        """A closer look at a doubtful ``box`` (x, y, w, h): a square crop three times its longer side, scaled
        so that side is CONFIRM_SIDE px, searched as it is and mirrored. The face at the crop's centre as
        found in the crop ((15,) in pixels of ``rgb``), its score the lower of the two views' (a face that
        scored low in its image, as when a mask hides half of it, holds up in both; most texture that
        scored as low does not); None where either view has none."""
        import cv2

        x, y, w, h = box
        # one crop size, one interpreter; beyond the image, black, as the network pads (replicated edges:
        # the same faces, one more false on the drawn masks)
        n, big = 3 * CONFIRM_SIDE, max(3, round(3 * max(w, h, 1.0)))
        left, top = round(x + w / 2 - big / 2), round(y + h / 2 - big / 2)
        part = rgb[max(0, top): max(0, top + big), max(0, left): max(0, left + big)]
        if not part.size:
            return None
        pad_t, pad_l = max(0, -top), max(0, -left)
        square = cv2.copyMakeBorder(np.ascontiguousarray(part), pad_t, big - pad_t - part.shape[0], pad_l,
                                    big - pad_l - part.shape[1], cv2.BORDER_CONSTANT, value=0)
        crop = cv2.resize(square, (n, n), interpolation=cv2.INTER_LINEAR if n > big else cv2.INTER_AREA)
        best = []
        for view in (crop, np.ascontiguousarray(crop[:, ::-1])):
            faces = self._nms(self._decode(view))
            off = np.abs(faces[:, :2] + faces[:, 2:4] / 2 - n / 2)  # the crop's centre is the box's
            faces = faces[(off[:, 0] < CONFIRM_SIDE / 2) & (off[:, 1] < CONFIRM_SIDE / 2)]
            if not len(faces):
                return None
            best.append(faces[np.argmax(faces[:, 14])])
        face = best[0].copy()
        face[14] = min(best[0][14], best[1][14])
        face[:14] *= big / n
        face[_XS] += left
        face[_YS] += top
        return face

    def _tiles(self, rgb: np.ndarray) -> np.ndarray:
        """The faces of every TILE-sized tile of ``rgb`` at full size, in its pixels, before the final NMS."""
        h, w = rgb.shape[:2]
        found = [np.zeros((0, 15), np.float32)]
        for y in _starts(h):
            for x in _starts(w):
                faces = self._decode(rgb[y: y + TILE, x: x + TILE])
                inner = _on_inner_edge(faces, x, y, min(TILE, w - x), min(TILE, h - y), w, h)
                faces = faces[~inner]
                faces[:, _XS] += x
                faces[:, _YS] += y
                found.append(faces)
        return np.concatenate(found)

    def _forward(self, rgb: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
        """The 12 raw outputs for one image (padded here) and its padded width."""
        import cv2

        h, w = rgb.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        interp, inp, outs = self._interpreter(ph, pw)
        buf = interp.tensor(inp)()
        buf[0, h:] = 0
        buf[0, :h, w:] = 0
        # the network reads BGR, 0-255, as OpenCV feeds it (cvtColor: a sixth of the time of a strided copy)
        buf[0, :h, :w] = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        del buf  # no view of the interpreter's memory may live through invoke
        interp.invoke()
        return {name: interp.get_tensor(i)[0] for name, i in outs.items()}, pw

    def _interpreter(self, ph: int, pw: int) -> tuple:
        key = (ph, pw)
        if key not in self._interps:
            if len(self._interps) >= 4:
                self._interps.pop(next(iter(self._interps)))
            interp = _interpreter_class()(model_content=_flatbuffer(self.precision), num_threads=self.threads)
            runner = interp.get_signature_runner("serving_default")
            inp = runner.get_input_details()["input"]["index"]
            outs = {name: d["index"] for name, d in runner.get_output_details().items()}
            del runner  # it holds views of the tensors: resizing refuses while it lives
            interp.resize_tensor_input(inp, [1, ph, pw, 3], strict=True)
            interp.allocate_tensors()
            self._interps[key] = (interp, inp, outs)
        self._interps[key] = self._interps.pop(key)  # the least recently used goes first
        return self._interps[key]

    def _decode(self, rgb: np.ndarray) -> np.ndarray:
        """(N, 15) candidates over the score threshold, before NMS (face_detect.cpp's postProcess)."""
        out, pw = self._forward(rgb)
        faces = []
        for s in STRIDES:
            score = np.sqrt(np.clip(out[f"cls_{s}"][:, 0], 0, 1) * np.clip(out[f"obj_{s}"][:, 0], 0, 1))
            idx = np.flatnonzero(score >= np.float32(self.score_threshold))
            if not idx.size:
                continue
            c = (idx % (pw // s)).astype(np.float32)[:, None]
            r = (idx // (pw // s)).astype(np.float32)[:, None]
            bb, kp = out[f"bbox_{s}"][idx], out[f"kps_{s}"][idx]
            f = np.empty((idx.size, 15), np.float32)
            bw, bh = np.exp(bb[:, 2]) * s, np.exp(bb[:, 3]) * s
            f[:, 0] = (c[:, 0] + bb[:, 0]) * s - bw / 2
            f[:, 1] = (r[:, 0] + bb[:, 1]) * s - bh / 2
            f[:, 2], f[:, 3] = bw, bh
            f[:, 4:14:2] = (kp[:, 0::2] + c) * s
            f[:, 5:14:2] = (kp[:, 1::2] + r) * s
            f[:, 14] = score[idx]
            faces.append(f)
        return np.concatenate(faces) if faces else np.zeros((0, 15), np.float32)

    def _nms(self, faces: np.ndarray) -> np.ndarray:
        """OpenCV's NMS, after dropping boxes no face has: wider than 1.6 or narrower than 0.4 times their
        height (a cut or stretched decode; YuNet's faces measure 0.7-0.85)."""
        ratio = faces[:, 2] / np.maximum(faces[:, 3], 1e-6)
        faces = faces[(ratio >= 0.4) & (ratio <= 1.6)]
        if len(faces) < 2:
            return faces
        faces = faces[nms(faces[:, :4], faces[:, 14], self.nms_threshold)]
        return faces[_not_inside(faces[:, :4])]


def _starts(n: int) -> list[int]:
    """Tile starts along a side of ``n`` pixels: TILE - OVERLAP apart, the last flush with the end, so
    every tile has the same size (one interpreter serves them all)."""
    if n <= TILE:
        return [0]
    starts = list(range(0, n - TILE, TILE - OVERLAP))
    return starts + [n - TILE]


def _on_inner_edge(faces: np.ndarray, x: int, y: int, tw: int, th: int, w: int, h: int) -> np.ndarray:
    """(N,) bool: the box touches an edge of its tile that is not an edge of the image (its face is cut)."""
    x0, y0 = faces[:, 0], faces[:, 1]
    x1, y1 = x0 + faces[:, 2], y0 + faces[:, 3]
    return (((x0 <= 2) & (x > 0)) | ((y0 <= 2) & (y > 0)) | ((x1 >= tw - 2) & (x + tw < w))
            | ((y1 >= th - 2) & (y + th < h)))


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by OpenCV's ``NMSBoxes`` on integer boxes (x, y, w, h): by score, highest first (stable),
    each dropping the later ones that overlap it by IoU over ``threshold``."""
    order = np.argsort(-scores.astype(np.float32), kind="stable")
    b = np.trunc(boxes).astype(np.int64)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    area = b[:, 2] * b[:, 3]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        ih = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.where((iw > 0) & (ih > 0), iw * ih, 0).astype(np.float64)
        union = (area[i] + area[rest]).astype(np.float64) - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / union, 0.0)
        order = rest[iou.astype(np.float32) <= np.float32(threshold)]
    return np.asarray(keep, np.int64)


def _not_inside(boxes: np.ndarray, share: float = 0.5) -> np.ndarray:
    """(N,) bool over boxes in score order: False for a box lying more than ``share`` inside a higher-scored
    one. NMS keeps a part of a face (a forehead and hair, 0.7) beside its whole (0.93) when their IoU is
    low (0.21): the part lies two thirds inside the whole."""
    keep = np.ones(len(boxes), bool)
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = np.maximum(boxes[:, 2] * boxes[:, 3], 1e-6)
    for i in range(1, len(boxes)):
        iw = np.clip(np.minimum(x2[i], x2[:i]) - np.maximum(x1[i], x1[:i]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[:i]) - np.maximum(y1[i], y1[:i]), 0, None)
        keep[i] = not np.any(keep[:i] & (iw * ih / area[i] > share))
    return keep


@lru_cache(maxsize=None)
def _flatbuffer(precision: str) -> bytes:
    return FLATBUFFERS[precision].read_bytes()


def _interpreter_class():
    from ..core.runtime import interpreter_class

    return interpreter_class()
