"""The table edge: the schemas of every table (``rows``), what each column means (``columns``) and the
writers for CSV, JSON and Parquet (``tables``).
"""
