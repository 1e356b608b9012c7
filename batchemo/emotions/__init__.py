"""Stage 3, emotions: the CNN with its model card (``model``), run on LiteRT (``core.runtime``) from
TFLite flatbuffers (``tflite``, ``export``, ``fastpath``), read with test-time augmentation (``tta``) by
``classify``; what its confidence means (``calibration``, ``doubt``) and which faces cannot be read
(``readability``).
"""
