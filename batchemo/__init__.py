"""batchemo: faces, emotions and LIME explanations for whole collections of photos and videos.

The public Python API; the command line (``batchemo ...``) is a thin layer over these functions:
``analyze`` (a DataFrame) and ``run`` (a RunResult, what ``batchemo run`` writes files from) read photos
and videos alike, with the options of ``RunOptions``.
Heavy imports (TensorFlow, OpenCV) happen on first use, not on ``import batchemo``.
"""
from __future__ import annotations

from ._version import __version__
from .analysis import RunOptions, RunResult, analyze, run
from .audit import audit
from .evaluate import evaluate
from .model import EmotionModel, ModelError, load_model
from .records import CLASSES
from .train import train  # the compatibility module loads first, so the name ends as the function
from .video import VideoAnalysis, VideoOptions, analyze_video, analyze_videos, video_timeline

__all__ = [
    "analyze", "run", "RunOptions", "RunResult", "analyze_video", "VideoOptions", "analyze_videos", "video_timeline", "VideoAnalysis", "audit", "evaluate", "train",
    "CLASSES", "EmotionModel", "ModelError", "load_model", "__version__",
]
