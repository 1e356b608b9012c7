"""Finding media files and decoding images robustly (EXIF rotation, alpha, 16-bit, huge files).

A file that cannot be read raises ``SourceError`` naming the file and the reason; callers record it and go on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")

#: Longest side an image is decoded at. Faces stay large enough for the detector and the 48x48 CNN,
#: and a 100-megapixel photo costs ~12 MB instead of ~300 MB.
MAX_SIDE = 2048


class SourceError(Exception):
    """A media file that cannot be used; ``str()`` is the reason, ``path`` the file."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(reason)
        self.path = str(path)
        self.reason = reason


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def find_media(paths: Iterable[str | os.PathLike], videos: bool = False) -> list[Path]:
    """Image (and, if ``videos``, video) files under ``paths``, recursively, in a stable sorted order.

    A named file is kept whatever its extension (so a broken or mislabelled file gets reported, not
    silently dropped); a path that does not exist raises FileNotFoundError.
    """
    wanted = IMAGE_EXTENSIONS + (VIDEO_EXTENSIONS if videos else ())
    out: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
        if p.is_file():
            found = [p]
        else:
            found = sorted(
                (f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in wanted
                 and not any(part.startswith(".") for part in f.relative_to(p).parts)),
                key=lambda f: str(f.relative_to(p)).lower(),
            )
        for f in found:
            if f not in seen:
                seen.add(f)
                out.append(f)
    return out


def read_image(path: str | os.PathLike, max_side: int = MAX_SIDE) -> tuple[np.ndarray, float]:
    """Decode an image as upright RGB uint8, at most ``max_side`` pixels long.

    Returns (rgb, scale) where scale = decoded size / original size, so boxes can be mapped back to the
    original pixels. EXIF orientation is applied, transparency is composited on white, 16-bit and
    grayscale images are converted; JPEGs are decoded directly at reduced size (``draft``).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise SourceError(path, "empty file (0 bytes)")
    except OSError as e:
        raise SourceError(path, f"cannot read: {e.strerror or e}") from None
    try:
        with Image.open(path) as im:
            orig_w, orig_h = im.size
            if orig_w == 0 or orig_h == 0:
                raise SourceError(path, "empty image (0 pixels)")
            if max(orig_w, orig_h) > max_side and im.format == "JPEG":
                im.draft("RGB", (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale: memory stays small
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
