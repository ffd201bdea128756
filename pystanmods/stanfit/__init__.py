"""Fit results: InferenceData, diagnostics, recovery tables."""

from pystanmods.stanfit.diagnostics import Diagnostics, diagnose
from pystanmods.stanfit.fit import StanFit
from pystanmods.stanfit.recovery import recovery_table

__all__ = ["Diagnostics", "StanFit", "diagnose", "recovery_table"]
