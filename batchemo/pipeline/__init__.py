"""The stages run over many inputs: one photo (``engine``, in worker processes), a whole collection
(``run``), videos (``video``), a labelled set (``evaluate``, ``audit``), the resume cache (``cache``) and
what a run keeps for its report (``gallery``). Records in, records out: nothing here writes a table or
draws a picture.
"""
