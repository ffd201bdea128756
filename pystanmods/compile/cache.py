"""The cache of compiled models.

A compiled model lives in a user cache directory (platformdirs), never inside
the installed package, under a key that covers the Stan code, the engine and
its Stan version, and the compile options. A file lock per key makes two
processes that compile the same model at once safe: the second waits, then
finds the first one's build.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from filelock import FileLock

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


def compile_program(program: Program, engine: Engine, *, quiet: bool = False) -> CompiledModel:
    """Return the cached build of ``program``, building it once if needed.

    The first build of a program prints that it is compiling and how long it
    took; later calls return at once.
    """
    directory, key = _entry(program, engine)
    marker = _read_marker(directory)
    if marker and marker.get("key") == key and engine.is_built(program, directory):
        return CompiledModel(program, engine, directory, key, float(marker["seconds"]), cached=True)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory) + ".lock"):
        # Another process may have finished the build while this one waited.
        marker = _read_marker(directory)
        if marker and marker.get("key") == key and engine.is_built(program, directory):
            return CompiledModel(program, engine, directory, key, float(marker["seconds"]), cached=True)
        directory.mkdir(parents=True, exist_ok=True)
        if not quiet:
            print(
                f"pystanmods: compiling {program.name} for {engine.name} (Stan {engine.stan_version()}); "
                f"this happens once per model and {COMPILE_TAKES} ...",
                file=sys.stderr,
                flush=True,
            )
        start = time.perf_counter()
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
        }
        tmp = directory / (MARKER + ".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(directory / MARKER)
        if not quiet:
            print(f"pystanmods: compiled {program.name} in {_elapsed(seconds)}", file=sys.stderr, flush=True)
    return CompiledModel(program, engine, directory, key, seconds, cached=False)
