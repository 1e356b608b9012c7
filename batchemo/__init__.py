"""batchemo: faces, emotions and LIME explanations for whole collections of photos and videos.

The public Python API; the command line (``batchemo ...``) is a thin layer over these functions:
``analyze`` (a DataFrame) and ``run`` (a RunResult, what ``batchemo run`` writes files from) read photos
and videos alike, with the options of ``RunOptions``.
Every name is imported on first use (PEP 562), so ``import batchemo`` and each command load only the
modules they need: start-up is part of every run.
"""
from __future__ import annotations

from importlib import import_module

from .core.records import CLASSES

__version__ = "0.1.0"  # the one place (pyproject.toml reads it)

#: public name -> the module that defines it, imported on first use
_WHERE = {
    "RunOptions": "pipeline.run", "RunResult": "pipeline.run", "analyze": "outputs.frames", "run": "outputs.frames",
    "analyze_video": "outputs.frames", "analyze_videos": "pipeline.video", "video_timeline": "pipeline.video",
    "VideoAnalysis": "pipeline.video", "VideoOptions": "pipeline.video", "audit": "pipeline.audit",
    "evaluate": "emotions.evaluate", "EmotionModel": "emotions.model", "ModelError": "emotions.model",
    "load_model": "emotions.model", "train": "training",
}

__all__ = [
    "analyze", "run", "RunOptions", "RunResult", "analyze_video", "VideoOptions", "analyze_videos", "video_timeline",
    "VideoAnalysis", "audit", "evaluate", "train",
    "CLASSES", "EmotionModel", "ModelError", "load_model", "__version__",
]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'batchemo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
