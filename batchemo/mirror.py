"""Compatibility: the mirror-symmetric network moved to ``batchemo.training.mirror`` (see CHANGELOG.md)."""
from __future__ import annotations

from .training.mirror import STAGES, build, custom_layers, plain_copy, unfold  # noqa: F401
