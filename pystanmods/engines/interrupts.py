"""Faults while chains run: Ctrl-C, SIGTERM and a chain process that dies.

Ctrl-C and SIGTERM both stop the chains and raise KeyboardInterrupt; the
command line then exits 130. Python ends at once on SIGTERM, leaving the
chain processes to run on as orphans, so during a fit SIGTERM takes the same
path as Ctrl-C. A chain process that dies is reported with the model and the
cache entry it ran (:func:`chain_died`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")


def _as_sigint(signum: int, frame: FrameType | None) -> None:
    # Whatever handles Ctrl-C now: asyncio.run's handler cancels its main
    # task (the engine then stops its chains), Python's raises KeyboardInterrupt.
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signum, frame)
    else:
        raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM acts as Ctrl-C (main thread only).

    A SIGTERM handler that the program installed itself, or an ignored
    SIGTERM, is left alone.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _as_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _children() -> list[int]:
    """Process ids of this process's children (Linux /proc; psutil elsewhere)."""
    proc = Path("/proc")
    if (proc / "self" / "stat").is_file():
        me = os.getpid()
        found: list[int] = []
        # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces.
        for entry in proc.iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                        found.append(int(entry.name))
        return sorted(found)
    try:
        import psutil
    except ImportError:
        return []
    return [child.pid for child in psutil.Process().children()]


def _executable(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).resolve()
    except OSError:
        try:
            import psutil

            return Path(psutil.Process(pid).exe()).resolve()
        except Exception:
            return None


def _running(pid: int) -> bool:
    """Alive and not yet a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_children(executable: Path, timeout: float = 5.0) -> list[int]:
    """Terminate this process's children that run ``executable``; returns their pids.

    SIGTERM first (CmdStan ends at once on it), SIGKILL for any still running
    after ``timeout`` seconds.
    """
    executable = executable.resolve()
    pids = [pid for pid in _children() if _executable(pid) == executable]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(_running(pid) for pid in pids):
            break
    return pids


class QuietAfterStop(logging.Filter):
    """Drops a library's "chain ended with code -N" errors for chains this process stopped.

    cmdstanpy logs each chain it sees end by a signal; after an interrupt
    those lines are the expected result of stopping the chains, not news.
    """

    def __init__(self, seconds: float = 30.0) -> None:
        super().__init__()
        self.until = time.monotonic() + seconds

    def filter(self, record: logging.LogRecord) -> bool:
        if time.monotonic() > self.until:
            return True
        codes = {-int(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)}
        return not any(isinstance(a, int) and a in codes for a in (record.args or ()))


def quiet_logger_after_stop(name: str) -> None:
    """Install :class:`QuietAfterStop` on logger ``name`` (and its handlers) for a while."""
    logger = logging.getLogger(name)
    quiet = QuietAfterStop()
    logger.addFilter(quiet)
    for handler in logger.handlers:
        handler.addFilter(quiet)


def chain_died(model: str, cause: str, entry: Path) -> RuntimeError:
    """The error for a chain process that died: the model, how, and the cache entry it ran.

    A :class:`SetupError` (a RuntimeError): the machine or the cache, not the
    user's data and not a bug here, so the command line reports it in one line.
    """
    from pystanmods.data.errors import SetupError

    return SetupError(
        f"a chain process of {model} died while sampling ({cause}); it ran the compiled model "
        f"in the cache entry {entry}. If this repeats, delete that directory to rebuild the model"
    )


#: cmdstanpy's error after a failed run ends with its RunSet, whose
#: ``retcodes=[...]`` line holds each CmdStan process's return code
#: (negative: killed by that signal).
_RETCODES = re.compile(r"retcodes=\[([^\]]*)\]")


def _signal_in(message: str) -> str | None:
    """``signal SIGBUS`` when cmdstanpy's error shows a CmdStan process killed by a signal."""
    found = _RETCODES.search(message)
    codes = [int(c) for c in re.findall(r"-?\d+", found.group(1))] if found else []
    for code in codes:
        if code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
    return None


def stop_cmdstan_on_interrupt(sample: Callable[..., T]) -> Callable[..., T]:
    """Decorates the CmdStan engine's ``sample(program, directory, ...)``.

    Within it SIGTERM acts as Ctrl-C; on either, this process's children that
    run the program's executable are terminated (cmdstanpy's threads would
    wait for them to finish their chains, and the interpreter for the
    threads), and a short KeyboardInterrupt is raised. A CmdStan process
    killed by a signal (a crash) is reported with the model and cache entry.
    """

    @functools.wraps(sample)
    def wrapper(engine: Any, program: Any, directory: Path, *args: Any, **kwargs: Any) -> T:
        with sigterm_as_interrupt():
            try:
                return sample(engine, program, directory, *args, **kwargs)
            except KeyboardInterrupt:
                quiet_logger_after_stop("cmdstanpy")
                for executable in engine.binaries(program, directory):
                    stop_children(executable)
                raise KeyboardInterrupt(f"sampling {program.name} was interrupted; its chains were stopped") from None
            except RuntimeError as error:
                cause = _signal_in(str(error))
                if cause is None:
                    raise
                raise chain_died(program.name, cause, directory) from error

    return wrapper


__all__ = [
    "QuietAfterStop",
    "chain_died",
    "quiet_logger_after_stop",
    "sigterm_as_interrupt",
    "stop_children",
    "stop_cmdstan_on_interrupt",
]
