"""Stage 2, faces: detectors behind one interface (``detect``; yunet's network on LiteRT: ``yunet``, made by
``yunet_export``), the 48x48 crop aligned by landmarks (``align``), tracks through video frames
(``track``) and the identity embedding people are grouped by (``embed``).
"""
