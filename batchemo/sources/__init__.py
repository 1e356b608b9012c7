"""Stage 1, what comes in: media files found under the paths given (``walk``), images decoded robustly
(``images``), videos as sampled frames (``video``), and labelled face sets with their FER+ votes
(``labelled``, ``votes``).
"""
