"""Shared fixtures: which engines run, and CmdStan tests skipped only when no CmdStan exists."""

from __future__ import annotations

import warnings

import pytest

from pystanmods.engines import find_cmdstan

HAVE_CMDSTAN = find_cmdstan() is not None

#: Diagnostics of the recovery fits, printed at the end of the run so that CI's
#: log holds each model's max R-hat, min bulk ESS, divergences and seconds.
RECOVERY_DIAGNOSTICS: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RECOVERY_DIAGNOSTICS:
        terminalreporter.section("recovery fits: max R-hat, min bulk ESS, divergences, sampling seconds")
        for line in RECOVERY_DIAGNOSTICS:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_CMDSTAN:
        return
    skip = pytest.mark.skip(reason="no CmdStan installation found (set CMDSTAN or run `make cmdstan`)")
    for item in items:
        if "cmdstan" in item.keywords:
            item.add_marker(skip)


def engines() -> list:
    """pystan always; cmdstan as a marked parameter, run wherever CmdStan is installed."""
    return ["pystan", pytest.param("cmdstan", marks=pytest.mark.cmdstan)]


@pytest.fixture(autouse=True)
def _quiet_arviz_refactor_notice() -> None:
    warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*", category=FutureWarning)
