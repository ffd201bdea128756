"""The cache of compiled models.

A compiled model lives in a user cache directory (platformdirs), never inside
the installed package, under a key that covers the Stan code, the engine and
its Stan version, and the compile options. A file lock per key makes two
processes that compile the same model at once safe: the second waits, then
finds the first one's build. The entry records the sha256 of its compiled
files, checked before each use: a damaged build is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from filelock import FileLock

from pystanmods.compile import integrity
from pystanmods.engines import interrupts
from pystanmods.engines.base import Engine, Program

MARKER = "compiled.json"

#: What one compile costs, as measured on 2-core machines: 35-90 s per program
#: on the embedded engine with little else running, 100-270 s in the benchmark
#: runs (benchmarks/results/compare.md, "compile s"), and 2-5 minutes per
#: program on CmdStan 2.35 on a loaded machine (issue 14).
COMPILE_TAKES = "takes from under a minute to about 5 minutes on 2 cores (the longer when they are busy)"


def _elapsed(seconds: float) -> str:
    """``48 s`` or ``3 min 05 s``."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.1f} s"


def cache_root() -> Path:
    """Root of the cache: ``$PYSTANMODS_CACHE_DIR`` or the user cache directory."""
    override = os.environ.get("PYSTANMODS_CACHE_DIR")
    root = Path(override) if override else Path(platformdirs.user_cache_dir("pystanmods"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_key(code: str, engine: str, stan_version: str, options: dict[str, Any]) -> str:
    """Hex digest identifying one build."""
    payload = json.dumps(
        {"code": code, "engine": engine, "stan": stan_version, "options": options}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class CompiledModel:
    """A built Stan program in the cache.

    Attributes
    ----------
    program : Program
        Name, code and compile options.
    engine : Engine
        The engine that built it.
    directory : Path
        The cache entry.
    key : str
        The cache key.
    compile_seconds : float
        How long the build took when it was made.
    cached : bool
        True when this call found the build already made.
    """

    program: Program
    engine: Engine
    directory: Path
    key: str
    compile_seconds: float
    cached: bool


def _entry(program: Program, engine: Engine) -> tuple[Path, str]:
    key = cache_key(program.code, engine.name, engine.stan_version(), program.options)
    return cache_root() / f"{engine.name}-stan{engine.stan_version()}" / f"{program.name}-{key[:16]}", key


def _read_marker(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _write_marker(directory: Path, record: dict[str, Any]) -> None:
    # A temporary file of its own, then one rename: a reader never sees half
    # a marker, even with two processes writing.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=MARKER + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(record, indent=2))
    os.replace(tmp, directory / MARKER)


def _damage(program: Program, engine: Engine, directory: Path, marker: dict[str, Any]) -> str | None:
    """Why the entry's build cannot be used, or None when its binaries check out.

    An entry made before checksums were recorded has none: its binaries are
    checked for truncation (ELF sizes) and their checksums recorded now.
    """
    binaries = engine.binaries(program, directory)
    recorded = marker.get("sha256")
    if recorded is not None:
        return integrity.mismatch(directory, binaries, recorded)
    for path in binaries:
        shortfall = integrity.elf_shortfall(path)
        if shortfall:
            return shortfall
    with contextlib.suppress(OSError):
        _write_marker(directory, {**marker, "sha256": integrity.checksums(directory, binaries)})
    return None


def _usable(program: Program, engine: Engine, directory: Path, key: str) -> tuple[dict[str, Any] | None, str | None]:
    """The entry's marker if its build can be used, else None and why it cannot (None: never built)."""
    marker = _read_marker(directory)
    if not marker or marker.get("key") != key:
        return None, None
    if not engine.is_built(program, directory):
        return None, "the compiled files are missing"
    damage = _damage(program, engine, directory, marker)
    return (None, damage) if damage else (marker, None)


def compile_program(program: Program, engine: Engine, *, quiet: bool = False) -> CompiledModel:
    """Return the cached build of ``program``, building it once if needed.

    The first build of a program prints that it is compiling and how long it
    took; later calls return at once. The build's checksums are verified at
    every call; a damaged build is rebuilt, with a one-line notice.
    """
    directory, key = _entry(program, engine)
    marker, damage = _usable(program, engine, directory, key)
    if marker:
        return CompiledModel(program, engine, directory, key, float(marker["seconds"]), cached=True)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory) + ".lock"):
        # Another process may have finished the build while this one waited.
        marker, damage = _usable(program, engine, directory, key)
        if marker:
            return CompiledModel(program, engine, directory, key, float(marker["seconds"]), cached=True)
        if damage:
            print(f"pystanmods: the cached build of {program.name} in {directory} is damaged ({damage}); "
                  "rebuilding it", file=sys.stderr, flush=True)
        directory.mkdir(parents=True, exist_ok=True)
        if not quiet:
            print(
                f"pystanmods: compiling {program.name} for {engine.name} (Stan {engine.stan_version()}); "
                f"this happens once per model and {COMPILE_TAKES} ...",
                file=sys.stderr,
                flush=True,
            )
        start = time.perf_counter()
        with interrupts.stop_started_processes_on_interrupt():
            engine.build(program, directory)
        seconds = time.perf_counter() - start
        record = {
            "key": key,
            "program": program.name,
            "engine": engine.name,
            "stan_version": engine.stan_version(),
            "options": program.options,
            "seconds": seconds,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "sha256": integrity.checksums(directory, engine.binaries(program, directory)),
        }
        _write_marker(directory, record)
        if not quiet:
            print(f"pystanmods: compiled {program.name} in {_elapsed(seconds)}", file=sys.stderr, flush=True)
    return CompiledModel(program, engine, directory, key, seconds, cached=False)
