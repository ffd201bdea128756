"""Batch fits: one fit per group (lineage, gene set) spread over Dask workers."""
