"""The CmdStan path without a CmdStan: its version, the cache folder it names,
the precision of its draws, the compile notice and ``make test-cmdstan``'s check.

A fake CmdStan directory (a ``makefile``, perhaps a ``bin/stanc`` script) is
all cmdstanpy asks of an installation before it is used, so these run here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pystanmods.compile import cache
from pystanmods.engines import cmdstan
from pystanmods.engines.base import Program
from pystanmods.engines.options import SamplerOptions
from tests.test_cache import CountingEngine


def fake_cmdstan(root: Path, makefile: str, stanc_banner: str | None = None, name: str = "cmdstan-2.35.0") -> Path:
    """A directory cmdstanpy accepts as an installation: a makefile, optionally ``bin/stanc``."""
    path = root / name
    (path / "bin").mkdir(parents=True)
    (path / "makefile").write_text(makefile)
    if stanc_banner is not None:
        stanc = path / "bin" / "stanc"
        stanc.write_text(f"#!/bin/sh\necho '{stanc_banner}'\n")
        stanc.chmod(0o755)
    return path


# CmdStan's own makefile has the line among its includes and targets.
MAKEFILE = "include make/program\n\nCMDSTAN_VERSION := {}\n\n.PHONY: help\nhelp:\n\t@echo 'CmdStan v$(CMDSTAN_VERSION) help'\n"


def test_version_is_read_in_full_from_the_makefile(tmp_path: Path) -> None:
    path = fake_cmdstan(tmp_path, MAKEFILE.format("2.35.0"))
    assert cmdstan.cmdstan_version(path) == "2.35.0"
    # Windows line ends and a release candidate keep their full version too.
    (path / "makefile").write_text("CMDSTAN_VERSION := 2.36.0-rc1\r\n")
    assert cmdstan.cmdstan_version(path) == "2.36.0-rc1"


@pytest.mark.skipif(os.name == "nt", reason="the fake stanc is a shell script")
def test_version_falls_back_to_stanc(tmp_path: Path) -> None:
    path = fake_cmdstan(tmp_path, "# no version here\n", stanc_banner="stanc3 v2.35.0 (Unix)")
    assert cmdstan.cmdstan_version(path) == "2.35.0"
    broken = fake_cmdstan(tmp_path, "# no version here\n", name="broken")
    assert cmdstan.cmdstan_version(broken) is None


def test_cache_folder_and_key_carry_the_patch_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cmdstanpy reports (2, 35) for every 2.35.x; the cache must tell 2.35.0 from 2.35.1,
    as the pystan engine's folder (pystan-stan2.35.0) already does."""
    monkeypatch.setenv("PYSTANMODS_CACHE_DIR", str(tmp_path / "cache"))
    program = Program("model1", "model {}", {})
    entries = {}
    for version in ("2.35.0", "2.35.1"):
        monkeypatch.setenv("CMDSTAN", str(fake_cmdstan(tmp_path / version, MAKEFILE.format(version))))
        engine = cmdstan.CmdStanEngine()
        assert engine.stan_version() == version
        directory, key = cache._entry(program, engine)
        assert directory.parent.name == f"cmdstan-stan{version}"
        entries[version] = (directory, key)
    assert entries["2.35.0"][1] != entries["2.35.1"][1]


def test_version_of_last_resort_is_the_directory_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMDSTAN", str(fake_cmdstan(tmp_path, "# no version\n", name="cmdstan-2.35.0")))
    assert cmdstan.CmdStanEngine().stan_version() == "2.35.0"


def test_draws_are_written_at_full_precision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine asks CmdStan for 18 significant digits (its default, 6, rounds
    every draw to about 5e-6); cmdstanpy takes 1 to 18 and passes it on as
    ``output sig_figs=18`` for CmdStan 2.25 and later."""
    import cmdstanpy

    monkeypatch.setenv("CMDSTAN", str(fake_cmdstan(tmp_path, MAKEFILE.format("2.35.0"))))
    calls: list[dict[str, Any]] = []

    class Stop(Exception):
        pass

    class FakeModel:
        def __init__(self, **kwargs: Any) -> None:
            pass

        def sample(self, **kwargs: Any) -> None:
            calls.append(kwargs)
            raise Stop

    monkeypatch.setattr(cmdstanpy, "CmdStanModel", FakeModel)
    engine = cmdstan.CmdStanEngine()
    with pytest.raises(Stop):
        engine.sample(Program("m", "model {}", {}), tmp_path, {}, SamplerOptions(chains=2, seed=1))
    assert calls[0]["sig_figs"] == cmdstan.SIG_FIGS == 18
    assert calls[0]["seed"] == 1 and calls[0]["chains"] == 2


def test_compile_notice_says_what_a_compile_takes_and_how_long_it_took(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYSTANMODS_CACHE_DIR", str(tmp_path))
    engine = CountingEngine(tmp_path / "builds.log")
    cache.compile_program(Program("notice", "model {}", {}), engine)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert "compiling notice for counting (Stan 2.35.0)" in lines[0] and "5 minutes" in lines[0]
    assert "a minute or less" not in lines[0]
    # The elapsed time, read back: the build slept 1 s.
    seconds = float(lines[1].removeprefix("pystanmods: compiled notice in ").removesuffix(" s"))
    assert seconds >= 1.0
    # A cached model prints nothing.
    cache.compile_program(Program("notice", "model {}", {}), engine)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("seconds", "shown"), [(48.04, "48.0 s"), (185.2, "3 min 05 s"), (59.6, "1 min 00 s")])
def test_elapsed_time_reads_in_minutes(seconds: float, shown: str) -> None:
    assert cache._elapsed(seconds) == shown


def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pystanmods.cli.cmdstan_check"], capture_output=True, text=True, env=env, timeout=120
    )


def test_make_test_cmdstan_names_its_cmdstan_or_fails_in_one_line(tmp_path: Path) -> None:
    found = check({**os.environ, "CMDSTAN": str(fake_cmdstan(tmp_path, MAKEFILE.format("2.35.0")))})
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == f"CmdStan 2.35.0 at {tmp_path / 'cmdstan-2.35.0'}"

    missing = check({**os.environ, "CMDSTAN": str(tmp_path / "nowhere")})
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("pystanmods: error: no CmdStan installation found") and "nowhere" in missing.stderr

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    recipe = makefile.split("\ntest-cmdstan:", 1)[1].split("\n\n", 1)[0]
    first = next(line for line in recipe.splitlines()[1:] if line.startswith("\t"))
    assert "pystanmods.cli.cmdstan_check" in first, "make test-cmdstan checks for CmdStan before anything else"
