"""The pictures a report embeds: boxes and tags drawn on frames, LIME heatmaps over faces, encoded JPEG/PNG.

Only reports draw; analysis hands over arrays and records.
"""
from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------- images for reports
EMOTION_COLOURS = {  # RGB, shared with the report's CSS
    "angry": (220, 50, 47), "disgust": (133, 153, 0), "fear": (108, 113, 196), "happy": (230, 160, 0),
    "neutral": (120, 120, 120), "sad": (38, 139, 210), "surprise": (211, 54, 130),
}


def encode(rgb: np.ndarray, fmt: str = ".jpg", quality: int = 85) -> bytes:
    """An RGB (or gray) uint8 image as JPEG or PNG bytes: what reports embed, small enough to keep."""
    import cv2

    bgr = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
    ok, buf = cv2.imencode(fmt, np.ascontiguousarray(bgr), params)
    if not ok:
        raise ValueError("image encoding failed")
    return buf.tobytes()


def annotate(img: np.ndarray, marks, scale: float = 1.0) -> np.ndarray:
    """Boxes and '#i label 87%' tags drawn on a copy of ``img`` (already at display size), every tag inside
    the picture.

    ``marks`` holds (Box in original pixels, label, confidence, face index); ``scale`` maps original pixels
    to ``img`` pixels. An uncertain label (``emotions.doubt.uncertain_label``) ends in '?'. Tags are sized for
    the picture as displayed (about 1/28 of its width, never below a readable 11 px) and placed clear of
    every face box and earlier tag (``place_tags``): above or below their box, beside it, else the free spot
    nearest it. A tag with no free spot shrinks to its number ('#7') in its box's corner; a report lists
    every face's label beside the picture, so none is lost (a crowded frame never grows a strip of tags).
    """
    import cv2

    from ..emotions.doubt import uncertain_label

    out = img.copy()
    h, w = out.shape[:2]
    th = max(1, round(max(h, w) / 300))
    font = cv2.FONT_HERSHEY_SIMPLEX
    size = max(0.42, w / 700)
    boxes = [tuple(int(round(v * scale)) for v in (m[0].x, m[0].y, m[0].w, m[0].h)) for m in marks]
    texts = [f"#{idx} {label} {conf:.0%}" + ("?" if uncertain_label(conf) else "") for _, label, conf, idx in marks]
    sizes = [_tag_size(t, font, size, th) for t in texts]
    spots = place_tags(boxes, [(tw, tag_h) for tw, tag_h, _ in sizes], w, h)
    for k, spot in enumerate(spots):
        if spot is None:  # no room for the whole tag: its number, in its box's corner, inside the picture
            texts[k] = f"#{marks[k][3]}"
            sizes[k] = _tag_size(texts[k], font, size, th)
            x, y, bw, bh = boxes[k]
            spots[k] = (min(max(0, x), max(0, w - sizes[k][0])), min(max(0, y), max(0, h - sizes[k][1])))
    for (x, y, bw, bh), (_, label, _, _), text, (tw, tag_h, tht), (left, top) in zip(boxes, marks, texts, sizes, spots):
        colour = EMOTION_COLOURS.get(label, (255, 255, 0))
        cv2.rectangle(out, (x, y), (x + bw, y + bh), colour, th + 1)
        cv2.rectangle(out, (left, top), (left + tw, top + tag_h), colour, -1)
        cv2.putText(out, text, (left + 3, top + tht + 3), font, size, (255, 255, 255), th, cv2.LINE_AA)
    return out


def _tag_size(text: str, font, size: float, th: int) -> tuple[int, int, int]:
    """(width, height, text height) of a tag, pixels."""
    import cv2

    (tw, tht), base = cv2.getTextSize(text, font, size, th)
    return tw + 6, tht + base + 6, tht


def place_tags(boxes: list[tuple[int, int, int, int]], sizes: list[tuple[int, int]], width: int,
               height: int) -> list[tuple[int, int] | None]:
    """Top-left corners for tags of ``sizes`` (w, h) px, one per face box (x, y, w, h) px, inside a
    ``width`` x ``height`` picture, none over any face box (its drawn outline included) or another tag;
    None where no spot is free. Tried in order: above, below, beside the box, then the nearest free spot
    on a 3-px grid."""
    taken = [(x - 2, y - 2, x + bw + 2, y + bh + 2) for x, y, bw, bh in boxes]
    out: list[tuple[int, int] | None] = []

    def free(r):
        return (r[0] >= 0 and r[1] >= 0 and r[2] <= width and r[3] <= height
                and all(r[2] <= q[0] or q[2] <= r[0] or r[3] <= q[1] or q[3] <= r[1] for q in taken))

    for (x, y, bw, bh), (tw, tag_h) in zip(boxes, sizes):
        cands = [(x, y - tag_h - 3), (x, y + bh + 3), (x + bw - tw, y - tag_h - 3), (x + bw - tw, y + bh + 3),
                 (x - tw - 3, y), (x + bw + 3, y)]
        spot = next(((left, top) for left, top in cands if free((left, top, left + tw, top + tag_h))), None)
        if spot is None:
            grid = ((left, top) for top in range(0, max(0, height - tag_h) + 1, 3)
                    for left in range(0, max(0, width - tw) + 1, 3))
            spot = min((p for p in grid if free((p[0], p[1], p[0] + tw, p[1] + tag_h))),
                       key=lambda p: abs(p[0] - x) + abs(p[1] - y), default=None)
        if spot is not None:
            taken.append((spot[0], spot[1], spot[0] + tw, spot[1] + tag_h))
        out.append(spot)
    return out


def heatmap_image(crop: np.ndarray, heatmap: np.ndarray, size: int = 144, alpha: float = 0.55) -> np.ndarray:
    """The face in gray under a diverging colour map of LIME weights: green for, red against the class.

    Scaled symmetrically by the largest absolute weight, so white/neutral means no evidence either way.
    """
    import cv2

    face = cv2.resize(np.asarray(crop, np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    face_rgb = np.stack([face] * 3, -1).astype(np.float32)
    hm = cv2.resize(heatmap.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
    peak = float(np.abs(hm).max())
    v = hm / peak if peak > 0 else hm
    pos, neg = np.clip(v, 0, 1)[..., None], np.clip(-v, 0, 1)[..., None]
    colour = pos * np.array([0, 200, 60], np.float32) + neg * np.array([230, 30, 30], np.float32)
    strength = alpha * np.maximum(pos, neg)
    out = face_rgb * (1 - strength) + colour * strength
    return np.clip(out, 0, 255).astype(np.uint8)


def explanation_images(crop: np.ndarray, exp, side: int = 112) -> tuple[bytes, bytes]:
    """(heatmap, superpixel boundaries) of one Explanation as JPEG bytes for a report."""
    import cv2

    heat = encode(heatmap_image(crop, exp.heatmap, side), ".jpg", 88)
    bounds = encode(cv2.resize(exp.boundaries, (side, side), interpolation=cv2.INTER_NEAREST), ".jpg", 88)
    return heat, bounds
