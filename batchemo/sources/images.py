"""Images: decoded robustly (EXIF rotation, alpha, 16-bit, huge files) and resized for crops and thumbnails.

A file that cannot be read raises ``walk.SourceError`` naming the file and the reason; callers record it and go on.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .walk import SourceError, check_regular


def fit(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``rgb`` shrunk to at most ``side`` pixels long (never enlarged), and the factor applied."""
    import cv2

    h, w = rgb.shape[:2]
    f = min(1.0, side / max(h, w))
    if f >= 1.0:
        return rgb.copy(), 1.0
    return cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA), f


def square(img: np.ndarray, side: int) -> np.ndarray:
    """A face crop resized to ``side`` x ``side`` for a report (black when the crop is empty)."""
    import cv2

    if img.size == 0:
        return np.zeros((side, side, 3), np.uint8)
    interp = cv2.INTER_AREA if min(img.shape[:2]) > side else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img), (side, side), interpolation=interp)

#: Longest side an image is decoded at. Faces stay large enough for the detector and the 48x48 CNN,
#: and a 100-megapixel photo costs ~12 MB instead of ~300 MB.
MAX_SIDE = 2048

#: Largest image decoded in full. JPEGs decode reduced (1/2 .. 1/8) whatever their size; other formats
#: (PNG, TIFF, ...) must be decoded whole first, and a 13,300 x 13,300 PNG (2.3 MB on disk) took 3.8 GB.
MAX_PIXELS = 60_000_000


def read_image(path: str | os.PathLike, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS,
               data: bytes | None = None) -> tuple[np.ndarray, float]:
    """Decode an image as upright RGB uint8, at most ``max_side`` pixels long.

    Returns (rgb, scale) where scale = decoded size / original size, so boxes can be mapped back to the
    original pixels. EXIF orientation is applied, transparency is composited on white, 16-bit and
    grayscale images are converted; JPEGs are decoded directly at reduced size (``draft``). ``data``: the
    file's bytes, read elsewhere (a cluster's client sends them: its workers need not see ``path``, which
    then only names the image in errors).
    """
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if data is None:
        check_regular(path)
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as im:
            orig_w, orig_h = im.size
            if orig_w == 0 or orig_h == 0:
                raise SourceError(path, "empty image (0 pixels)")
            if im.format == "JPEG":
                f = min(1.0, max_side / max(orig_w, orig_h), (max_pixels / (orig_w * orig_h)) ** 0.5)
                if f < 1.0:  # decode at 1/2, 1/4 or 1/8 scale: memory stays small
                    im.draft("RGB", (max(1, int(orig_w * f)), max(1, int(orig_h * f))))
            elif orig_w * orig_h > max_pixels:
                raise SourceError(path, f"image too large to decode: {orig_w}x{orig_h} pixels, over the limit of "
                                        f"{max_pixels:,} (--max-pixels) for {im.format or 'this format'}")
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = _to_rgb(im)
    except SourceError:
        raise
    except UnidentifiedImageError:
        raise SourceError(path, "not an image, or an unsupported format") from None
    except Image.DecompressionBombError as e:
        raise SourceError(path, f"image too large to decode safely ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower():
            msg = "truncated file (" + msg + ")"
        raise SourceError(path, f"cannot decode: {msg}") from None
    h, w = rgb.shape[:2]
    if max(h, w) > max_side:
        import cv2

        f = max_side / max(h, w)
        rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    # EXIF rotation may swap sides: compare like with like.
    upright_long = max(orig_w, orig_h)
    return np.ascontiguousarray(rgb), max(rgb.shape[:2]) / upright_long


def _to_rgb(im) -> np.ndarray:
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        g = np.clip(a / hi * 255.0, 0, 255).astype(np.uint8)
        return np.stack([g] * 3, axis=-1)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        g = np.clip((a - a.min()) / max(np.ptp(a), 1e-9) * 255, 0, 255).astype(np.uint8)
        return np.stack([g] * 3, axis=-1)
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return np.asarray(im.convert("RGB"))
