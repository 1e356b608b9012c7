"""Stage 5, people: faces grouped into people across photos and videos (``cluster``), and each person's
faces and headline emotion (``refs``).
"""
