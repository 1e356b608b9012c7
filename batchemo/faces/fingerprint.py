"""What a detector's faces depend on: the settings a run records, and the identity cached results are keyed by.

A resumed run, ``--cache`` and a video's work folder reuse faces only when the detector that found them is
the one asked for now: same detector, same settings (defaults included), same class constants and, for
yunet, the same network file. A new release that changes a default or the network recomputes them.
"""
from __future__ import annotations

import hashlib
import inspect

from .detect import _CLASSES, YunetDetector, resolve_detector


def detector_settings(det) -> dict:
    """Every option a detector object was made with, as it holds it (``make_detector``'s keywords, defaults
    included): what a video's settings record and its report show."""
    names = [k for k in inspect.signature(type(det).__init__).parameters if k not in ("self", "search")]
    names += ["flip", "zoom", "precision"] if isinstance(det, YunetDetector) else []
    return {k: getattr(det, k) for k in names if hasattr(det, k)}


def detector_identity(detector, options: dict | None = None) -> dict:
    """The key of what ``detector`` finds (a name with its ``options``, or a detector object): the detector
    that runs ('auto' resolved), every setting with its defaults, its class's constants and, for yunet,
    its search constants and the network file's sha256."""
    if isinstance(detector, str):
        name = resolve_detector(detector)
        cls, settings = _CLASSES[name], _defaults(_CLASSES[name])
        settings.update(options or {})
    else:
        name = getattr(detector, "name", type(detector).__name__)
        cls, settings = type(detector), detector_settings(detector)
    ident = {"name": name, "settings": settings,
             "constants": {k: v for c in reversed(cls.__mro__) for k, v in vars(c).items() if k.isupper()}}
    if issubclass(cls, YunetDetector):
        from . import yunet

        ident["search"] = {k: getattr(yunet, k) for k in ("TILE", "OVERLAP", "CONFIRM_SIDE")}
        fb = yunet.FLATBUFFERS.get(settings.get("precision"))
        ident["network"] = hashlib.sha256(fb.read_bytes()).hexdigest() if fb and fb.is_file() else None
    return ident


def _defaults(cls) -> dict:
    """The keyword defaults of a detector class (yunet's network options included)."""
    inits = [cls.__init__]
    if issubclass(cls, YunetDetector):
        from .yunet import YuNet

        inits.append(YuNet.__init__)
    return {k: p.default for f in inits for k, p in inspect.signature(f).parameters.items()
            if p.default is not p.empty and k not in ("score_threshold", "threads")}
