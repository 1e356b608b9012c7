"""batchemo: faces, emotions and LIME explanations for whole collections of photos and videos.

The public Python API; the command line (``batchemo ...``) is a thin layer over these functions:
``analyze`` (a DataFrame) and ``run`` (a RunResult, what ``batchemo run`` writes files from) read photos
and videos alike, with the options of ``RunOptions``.
Every name is imported on first use (PEP 562), so ``import batchemo`` and each command load only the
modules they need: start-up is part of every run.
"""
from __future__ import annotations

from importlib import import_module

from ._version import __version__
from .records import CLASSES

#: public name -> the module that defines it, imported on first use
_WHERE = {
    "RunOptions": "analysis", "RunResult": "analysis", "analyze": "analysis", "run": "analysis",
    "analyze_video": "video", "analyze_videos": "video", "video_timeline": "video", "VideoAnalysis": "video",
    "VideoOptions": "video", "audit": "audit", "evaluate": "evaluate",
    "EmotionModel": "model", "ModelError": "model", "load_model": "model",
}
#: ``train`` is the compatibility module batchemo/train.py, callable as the function it replaced: imported on
#: first use, so an analysis never loads the training code.

__all__ = [
    "analyze", "run", "RunOptions", "RunResult", "analyze_video", "VideoOptions", "analyze_videos", "video_timeline", "VideoAnalysis", "audit", "evaluate", "train",
    "CLASSES", "EmotionModel", "ModelError", "load_model", "__version__",
]


def __getattr__(name: str):
    if name == "train":
        return import_module(".train", __name__)  # the import sets the package attribute too
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'batchemo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
