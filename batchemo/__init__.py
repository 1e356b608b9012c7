"""batchemo: faces, emotions and LIME explanations for whole collections of photos and videos.

The public Python API; the command line (``batchemo ...``) is a thin layer over these functions.
Heavy imports (TensorFlow, OpenCV) happen on first use, not on ``import batchemo``.
"""
from __future__ import annotations

from .engine import analyze
from .model import CLASSES, EmotionModel, ModelError, load_model

__version__ = "0.1.0"

__all__ = ["analyze", "CLASSES", "EmotionModel", "ModelError", "load_model", "__version__"]
