"""The floor every stage stands on: the records that cross the seams (``records``), files written
atomically (``files``) and the LiteRT runtime with its caches and one-line notices (``runtime``).

Nothing here imports another part of batchemo.
"""
