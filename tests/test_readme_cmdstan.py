"""The README's "Direct CmdStan use" commands: checked here, run verbatim against CmdStan.

Without CmdStan the blocks are found, every ``pystanmods`` command in them
parses and runs, and what they write is what the ``make`` and sampler lines
then read; every sampler argument sits where CmdStan's parser looks for it.
With CmdStan (marked ``cmdstan``) each block runs as written, in a fresh
folder with ``$CMDSTAN`` set, and stansummary must list the model's
hyperparameters with an R-hat.
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import pystanmods as psm
from pystanmods.cli.main import build_parser
from tests import readme_commands as rc


def blocks() -> list[str]:
    return rc.shell_blocks(rc.README.read_text())


def shell_env(**extra: str) -> dict[str, str]:
    """The environment of a user who installed pystanmods: its ``pystanmods`` first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), **extra}


def exported_model(block: str) -> str:
    export = next(c for c in rc.commands(block) if c.startswith("pystanmods export "))
    return shlex.split(export)[2]


# ------------------------------------------------------------ without CmdStan


def test_the_blocks_are_found_in_order() -> None:
    found = blocks()
    assert len(found) == 2, "the direct-use section has the model5 block and the threads block"
    for block in found:
        steps = [c.split()[0] for c in rc.commands(block)]
        assert steps[0] == "pystanmods" and "make" in steps, steps
        # simulate, export, make, sample, stansummary: each step after the one it needs.
        assert steps.index("make") > max(i for i, s in enumerate(steps) if s == "pystanmods")
        assert steps[-1].endswith("/bin/stansummary"), steps


def test_every_pystanmods_command_parses() -> None:
    parser = build_parser()
    for block in blocks():
        for command in rc.commands(block):
            if command.startswith("pystanmods "):
                try:
                    parser.parse_args(shlex.split(command)[1:])
                except SystemExit:
                    pytest.fail(f"the README's `{command}` does not parse")


def test_sampler_arguments_are_where_cmdstan_looks_for_them() -> None:
    for block in blocks():
        commands = rc.commands(block)
        built = dict(t for t in map(rc.make_target, commands) if t is not None)
        samplers = [c for c in commands if " sample " in f" {c} "]
        assert samplers, block
        for command in samplers:
            executable, *arguments = shlex.split(command)
            assert rc.cmdstan_argument_problems(arguments) == [], command
            threads = next((int(a.split("=")[1]) for a in arguments if a.startswith("num_threads=")), 1)
            target = next((t for t in built if t.endswith("/" + executable)), None)
            assert target is not None, f"{executable} is not what a make line builds"
            if threads != 1:
                assert built[target], f"num_threads={threads} needs make ... STAN_THREADS=true"


def test_the_argument_check_fails_the_old_readme() -> None:
    """The README as it was: `seed=1` after `output file=...` is rejected by CmdStan."""
    old = "sample num_chains=4 data file=model5.json output file=model5_draws.csv seed=1".split()
    assert rc.cmdstan_argument_problems(old) == ["seed=1 is either mistyped or misplaced"]
    assert rc.cmdstan_argument_problems(["num_chains=1", "data", "file=x"]) == [
        "num_chains=1 is either mistyped or misplaced", "A method must be specified!"]


def test_pystanmods_steps_write_what_make_and_the_sampler_read(tmp_path: Path) -> None:
    """Runs the blocks' pystanmods commands verbatim: the .stan file is where make is
    pointed, the data file where the sampler reads it, the output folder exists."""
    for block in blocks():
        commands = rc.commands(block)
        script = "\n".join(c for c in commands if c.startswith("pystanmods "))
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=shell_env(),
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        for command in commands:
            target = rc.make_target(command)
            if target is not None:
                path = Path(target[0].replace("$PWD", str(tmp_path)))
                assert path.is_absolute(), f"make -C changes directory: {target[0]} must be absolute"
                assert path.with_suffix(".stan").is_file(), f"make is pointed at {path}, with no .stan beside it"
            elif " sample " in f" {command} ":
                words = shlex.split(command)
                assert (tmp_path / words[0]).parent.is_dir()
                # CmdStan's "data file=X" and "output file=Y".
                files = {group: value.removeprefix("file=") for group, value in zip(words, words[1:])
                         if value.startswith("file=")}
                data, output = files["data"], files["output"]
                assert (tmp_path / data).is_file(), f"the sampler reads {data}, which nothing wrote"
                assert (tmp_path / output).parent.is_dir() and Path(output).parent != Path("."), (
                    "the draws go into a folder, not the working directory")


# --------------------------------------------------------------- with CmdStan


def summary_rhat(stdout: str, name: str) -> float:
    """R_hat of the row ``name`` in stansummary's table."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "R_hat" in line.split()), None)
    assert start is not None, f"no R_hat column in stansummary's output:\n{stdout[-3000:]}"
    column = lines[start].split().index("R_hat")
    row = next((line for line in lines[start + 1:] if line.split()[:1] == [name]), None)
    assert row is not None, f"stansummary lists no {name}:\n{stdout[-3000:]}"
    return float(row.split()[1:][column])


@pytest.mark.cmdstan
def test_direct_use_runs_verbatim(tmp_path: Path) -> None:
    """Each block, as written, in one empty folder (as a user would), with $CMDSTAN set:
    it must exit 0, stansummary must show every hyperparameter with a finite R-hat,
    and nothing may land in the folder that the block does not name."""
    from pystanmods.engines import find_cmdstan

    cmdstan = find_cmdstan()
    assert cmdstan is not None
    work = tmp_path / "work"
    work.mkdir()
    for i, block in enumerate(blocks()):
        script = tmp_path / f"block{i}.sh"  # outside the working folder
        script.write_text(block)
        result = subprocess.run(["bash", "-euo", "pipefail", str(script)], cwd=work,
                                env=shell_env(CMDSTAN=str(cmdstan)), capture_output=True, text=True, timeout=3600)
        assert result.returncode == 0, f"block {i} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        for name in psm.get_model(exported_model(block)).hyperparameters:
            assert math.isfinite(summary_rhat(result.stdout, name)), name
    written = {p.name for p in work.iterdir()}
    assert "output.csv" not in written
    text = rc.section(rc.README.read_text())
    assert all(name in text for name in written), f"{written} holds files the README does not name"
    assert sorted(p.name for p in (work / "model5").glob("draws_*.csv")) == [f"draws_{k}.csv" for k in range(1, 5)]
