"""Output paths: checked before any work, and a fallback so that a finished result is never lost.

Every ``-o``/``--out`` of the command line (and ``out=`` of the batch and SBC
APIs) goes through :func:`check_file` or :func:`check_directory` before
anything is computed, and results are written with :func:`write_or_fallback`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot be written; the message names it and why."""


class OutputSavedElsewhere(RuntimeError):
    """The result could not be written where asked and was saved to :attr:`fallback` instead."""

    def __init__(self, message: str, fallback: Path) -> None:
        super().__init__(message)
        self.fallback = fallback


def _writable(path: Path, mode: int) -> bool:
    """``os.access`` in one place (tests emulate a non-root user through it)."""
    return os.access(path, mode)


def _existing_ancestor(path: Path) -> Path:
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path.cwd()


def _check_creatable(directory: Path, what: str, target: Path) -> None:
    """Raise unless ``directory`` exists as a writable directory or can be created."""
    ancestor = _existing_ancestor(directory)
    if not ancestor.is_dir():
        raise OutputError(f"{what} {target}: {ancestor} is a file, not a directory, so {directory} cannot be created")
    if not _writable(ancestor, os.W_OK | os.X_OK):
        where = "create" if ancestor == directory else f"create {directory} in"
        raise OutputError(f"{what} {target}: cannot {where} {ancestor} (no write permission)")


def check_file(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Return ``path`` if a file can be written there, else raise :class:`OutputError`.

    It must not be a directory, an existing file must be writable, and its
    parent must be a writable directory or creatable. Nothing is created.
    """
    target = Path(path)
    if str(path).endswith(os.sep) or target.is_dir():
        raise OutputError(f"{what} {path} is a directory; give a file path inside it, e.g. {target / ('out' + _suffix(what))}")
    if target.exists():
        if not _writable(target, os.W_OK):
            raise OutputError(f"{what} {path} exists and is not writable")
        return target
    _check_creatable(target.parent, what, target)
    return target


def _suffix(what: str) -> str:
    """The usual file suffix of an output, for messages and nameless targets (``/dev/full``)."""
    return {"fit": ".nc", "Stan data": ".json", "true values": ".json"}.get(what, ".csv")


def check_directory(path: str | os.PathLike[str], what: str = "output directory") -> Path:
    """Return ``path`` if it is, or can be created as, a writable directory; else raise :class:`OutputError`."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{what} {path} exists and is not a directory")
    _check_creatable(target, what, target)
    return target


def write_or_fallback(write: Callable[[Path], object], path: str | os.PathLike[str], what: str = "output") -> Path:
    """Write with ``write(path)``; if that fails, write to a fallback file in the working directory.

    Returns ``path`` on success. On failure a partial file this call created
    is removed, the result is written to ``./pystanmods-<what>-<time><suffix>``
    (or the temporary directory if the working directory is not writable), and
    :class:`OutputSavedElsewhere` is raised naming both, so the caller reports
    a failure but nothing computed is lost.
    """
    target = Path(path)
    existed = target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write(target)
        return target
    except Exception as error:  # any writer failure (OSError, netCDF/HDF5 errors): keep the result
        reason = " ".join(str(error).split()) or type(error).__name__
        if not existed and target.is_file():
            target.unlink(missing_ok=True)
    stem = f"pystanmods-{what.replace(' ', '-').lower()}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}{target.suffix or _suffix(what)}"
    for directory in (Path.cwd(), Path(os.environ.get("TMPDIR", "/tmp"))):
        fallback = directory / stem
        try:
            write(fallback)
        except Exception:
            fallback.unlink(missing_ok=True)
            continue
        raise OutputSavedElsewhere(
            f"could not write the {what} to {path} ({reason}); it was saved to {fallback.resolve()} instead",
            fallback.resolve(),
        )
    raise OutputError(f"could not write the {what} to {path} ({reason}), nor to a fallback file in {Path.cwd()}")
