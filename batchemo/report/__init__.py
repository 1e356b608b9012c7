"""The self-contained HTML reports: Jinja2 templates (autoescaped), images embedded as data URIs.

One module per report (``run``, ``video``, ``audit``); each reads results (tables and records) and runs no
model. Reports import only this package, ``outputs``, ``records`` and ``confidence``.
"""
from __future__ import annotations

import base64
import os
from datetime import datetime
from pathlib import Path

from ..core.files import atomic_write_text
from ..emotions.tta import describe as describe_tta
from .pictures import EMOTION_COLOURS

_ENV = None


def _template_dir() -> Path:
    """Installed: the ``batchemo.templates`` package data; from a checkout: the top-level templates/."""
    try:
        from importlib.resources import files

        path = Path(str(files("batchemo.templates")))
        if (path / "base.html.j2").exists():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "templates"


def environment():
    global _ENV
    if _ENV is None:
        from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

        _ENV = Environment(
            loader=FileSystemLoader(str(_template_dir())),
            autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            bytecode_cache=_bytecode_cache(),
        )
    return _ENV


def _bytecode_cache():
    """Compiled templates kept between runs in the user cache (``runtime.cache_root``): compiling them is
    ~0.1 s of every run, a sixth of a one-photo run. Keyed by each template's source, written atomically
    (jinja2's own cache); a folder that cannot be made or written only costs the compile."""
    from jinja2 import FileSystemBytecodeCache

    from ..core.runtime import cache_root

    class Quiet(FileSystemBytecodeCache):
        def load_bytecode(self, bucket):
            try:
                super().load_bytecode(bucket)
            except Exception:  # noqa: BLE001 - unreadable, truncated, another jinja2's: compile afresh
                bucket.reset()

        def dump_bytecode(self, bucket):
            try:
                super().dump_bytecode(bucket)
            except OSError:  # read-only or full: next run compiles again
                pass

    folder = cache_root() / "templates"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return Quiet(str(folder))


def data_uri(data, mime: str | None = None) -> str:
    """Embed image bytes; the MIME type is sniffed from the bytes (JPEG or PNG). Anything else (None, a
    pandas NaN for a row without that image) gives "", so templates can test it."""
    if not isinstance(data, bytes) or not data:
        return ""
    if mime is None:
        mime = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def picture(rgb, quality: int = 88) -> str:
    """A uint8 image array (RGB or gray) as a JPEG data URI; "" for None. Records carry arrays; a report
    is the only place they are encoded."""
    from .pictures import encode

    return "" if rgb is None else data_uri(encode(rgb, ".jpg", quality))


def shot_picture(shot, memo: dict | None = None, quality: int = 80) -> str:
    """A ``records.Shot`` drawn (boxes and tags) and encoded; ``memo`` keeps one URI per shot, since the
    keyframes of one frame share it."""
    from .pictures import annotate

    if shot is None:
        return ""
    if memo is not None and id(shot) in memo:
        return memo[id(shot)][1]
    uri = picture(annotate(shot.image, shot.marks, shot.scale), quality)
    if memo is not None:
        memo[id(shot)] = (shot, uri)  # the shot is held so its id is not reused while the memo lives
    return uri


def explanation_pictures(crop, exp) -> tuple[str, str]:
    """(heatmap, superpixel boundaries) of one ``records.Explanation`` as data URIs; ("", "") for None."""
    if exp is None:
        return "", ""
    from .pictures import explanation_images

    heat, bounds = explanation_images(crop, exp)
    return data_uri(heat), data_uri(bounds)


def plain_model(card: dict, model_file: str | os.PathLike | None = None) -> str:
    """The model as a user needs it: how often it is right, when it was trained, where its card is. The
    training lineage (teachers, fine-tuning) stays in the card."""
    acc, n = card.get("validation_accuracy"), card.get("validation_faces")
    parts = [f"emotion model ({card.get('architecture') or 'unknown design'})"]
    if card.get("ferplus"):  # measured against ten people per face
        f = card["ferplus"]
        parts.append(f"gives the label most of ten people chose on {f['majority_accuracy'] * 100:.1f}% of "
                     f"{f['majority_faces']:,} held-out FER2013 faces")
    elif acc:
        parts.append(f"labels {float(acc) * 100:.1f}% of {f'{int(n):,} ' if n else ''}held-out FER2013 faces right")
    if card.get("date"):
        parts.append(f"trained {card['date']}")
    card_file = Path(model_file).with_name(Path(model_file).stem + ".card.json").name if model_file else ""
    parts.append(f"details in its card, {card_file}" if card_file else "details in its model card")
    return ", ".join(parts)


def base_context(model_card: dict, model_file: str | os.PathLike | None = None) -> dict:
    from .. import __version__

    return {
        "version": __version__,
        "created": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "colours": EMOTION_COLOURS,
        "model": _Card(model_card),
        "model_training": training_summary(model_card),
        "model_plain": plain_model(model_card, model_file),
        "model_reads": describe_tta((model_card.get("preprocessing") or {}).get("tta", "none"),
                                    model_card.get("architecture", "")),
    }


def training_summary(card: dict) -> str:
    """How the model was trained, in words for a settings line. The card's ``epochs`` is the epoch kept
    (chosen on validation), which for a fine-tune is not all the training behind the model: say so."""
    recipe = card.get("recipe") or {}
    kept, run = card.get("epochs") or 0, recipe.get("epochs_run") or 0
    how = []
    if kept:
        how.append(f"best epoch {kept} of {run}" if run and run != kept else f"{kept} epochs")
    if recipe.get("init"):
        how.append(f"fine-tuned from {recipe['init']}")
    teachers = card.get("teachers") or []
    if teachers:
        how.append(f"taught by {len(teachers)} teacher{'s' if len(teachers) != 1 else ''}")
    if not how and not card.get("training_data"):
        return ""
    return ", ".join([f"trained on {card.get('training_data') or '?'}"] + how)


class _Card(dict):
    """Model card fields as attributes for the templates; a missing one reads as empty, not an error."""

    def __getattr__(self, key):
        return self.get(key, "")


def render(template: str, context: dict, out: str | os.PathLike) -> Path:
    html = environment().get_template(template).render(**context)
    return atomic_write_text(out, html)
