"""Simulation-based calibration of the catalogue's models, on Dask."""
