"""The README's "Direct CmdStan use" shell blocks, as commands a test can check or run.

Used by tests/test_readme_cmdstan.py: here without CmdStan (the blocks are
found, every ``pystanmods`` command parses and writes what ``make`` and the
executable then read, every CmdStan argument is where CmdStan's parser looks
for it), and against a real CmdStan, where the blocks run verbatim.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Direct CmdStan use"

#: The part of CmdStan's argument tree the README may use. CmdStan parses a
#: method (``sample``) and its own arguments, then top-level groups, each at
#: most once: a token not in the current group is looked up among the
#: top-level ones only, so ``output file=x seed=1`` fails ("seed=1 is either
#: mistyped or misplaced") where ``output file=x random seed=1`` works.
METHOD_ARGUMENTS = {"sample": {"num_samples", "num_warmup", "save_warmup", "thin", "num_chains"}}
GROUPS = {
    "data": {"file"},
    "output": {"file", "diagnostic_file", "refresh", "sig_figs", "profile_file"},
    "random": {"seed"},
}
TOP_LEVEL_VALUES = {"init", "num_threads", "id"}


def section(text: str, heading: str = SECTION) -> str:
    """The text under ``heading`` up to the next heading of the same level."""
    start = text.index(heading)
    following = re.search(r"^## ", text[start + len(heading):], re.MULTILINE)
    return text[start:] if following is None else text[start:start + len(heading) + following.start()]


def shell_blocks(text: str) -> list[str]:
    """The fenced ``sh`` blocks of the direct-use section, in order."""
    return re.findall(r"^```sh\n(.*?)^```", section(text), re.MULTILINE | re.DOTALL)


def commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = (line.split(" #", 1)[0].strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def cmdstan_argument_problems(arguments: list[str]) -> list[str]:
    """What CmdStan's parser would reject among an executable's arguments (for the subset above)."""
    problems: list[str] = []
    method: str | None = None
    current: set[str] = set()
    used: set[str] = set()
    for token in arguments:
        name, has_value, _ = token.partition("=")
        if method is None and not has_value and token in METHOD_ARGUMENTS:
            method, current = token, METHOD_ARGUMENTS[token]
        elif has_value and name in current:
            continue
        elif not has_value and token in GROUPS and token not in used:
            used.add(token)
            current = GROUPS[token]
        elif has_value and name in TOP_LEVEL_VALUES and name not in used:
            used.add(name)
            current = set()
        else:
            problems.append(f"{token} is either mistyped or misplaced")
    if method is None:
        problems.append("A method must be specified!")
    return problems


def make_target(command: str) -> tuple[str, bool] | None:
    """``(target, threads)`` of a ``make -C "$CMDSTAN" ... TARGET`` command, else None."""
    words = shlex.split(command)
    if words[:3] != ["make", "-C", "$CMDSTAN"]:
        return None
    return words[-1], "STAN_THREADS=true" in words[3:-1]
