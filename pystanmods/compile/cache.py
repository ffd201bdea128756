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
                "this happens once per model and takes a minute or less ...",
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
            print(f"pystanmods: compiled {program.name} in {seconds:.1f} s", file=sys.stderr, flush=True)
    return CompiledModel(program, engine, directory, key, seconds, cached=False)
