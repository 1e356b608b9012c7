"""batchemo: faces, emotions and LIME explanations for whole collections of photos and videos.

The public Python API; the command line (``batchemo ...``) is a thin layer over these functions.
Heavy imports (TensorFlow, OpenCV) happen on first use, not on ``import batchemo``.
"""
from __future__ import annotations

from .audit import audit
from .engine import analyze
from .evaluate import evaluate
from .model import CLASSES, EmotionModel, ModelError, load_model
from .video import analyze_video, analyze_videos

__version__ = "0.1.0"

__all__ = ["analyze", "analyze_video", "analyze_videos", "audit", "evaluate", "CLASSES", "EmotionModel", "ModelError", "load_model", "__version__"]
