"""Stage 4, explanations: LIME heatmaps with a faithfulness check (``lime``) and the words for how far to
trust one (``faithfulness``).
"""
