"""Faults while chains run: Ctrl-C, SIGTERM and a chain process that dies.

Ctrl-C and SIGTERM both stop the chains and raise KeyboardInterrupt; the
command line then exits 130. Python ends at once on SIGTERM, leaving the
chain processes to run on as orphans, so during a fit SIGTERM takes the same
path as Ctrl-C. A chain process that dies is reported with the model and the
cache entry it ran (:func:`chain_died`).

A process that starts with SIGINT ignored (a job started with ``&`` by a
script, or by anything else without job control) keeps ignoring it, as
Python itself and every other program do; SIGTERM still stops its fit. The
stop does not depend on SIGINT's handler: the chains' event loop is cancelled
by handlers of its own (:func:`run_until_interrupted`), and the CmdStan
engine's chains are killed by a thread that learns of the signal from
Python's wakeup fd, not from wherever the KeyboardInterrupt happens to
surface, nor only once the main thread runs the handler
(:func:`stop_cmdstan_on_interrupt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")


def _as_sigint(signum: int, frame: FrameType | None) -> None:
    # Whatever handles Ctrl-C now: asyncio.run's handler cancels its main
    # task, Python's raises KeyboardInterrupt. With SIGINT ignored there is
    # none, and SIGTERM raises as Python's would.
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signum, frame)
    else:
        raise KeyboardInterrupt


def _is_ctrl_c_default(handler: Any) -> bool:
    """Python's Ctrl-C handler, or asyncio.run's stand-in for it."""
    if handler is signal.default_int_handler:
        return True
    function = getattr(handler, "func", None)  # asyncio.Runner's functools.partial
    return getattr(function, "__qualname__", "") == "Runner._on_sigint"


def _interrupt_signals() -> list[signal.Signals]:
    """The signals that stop a fit here.

    SIGTERM unless the program handles or ignores it itself; SIGINT when it
    has Python's default handler (or asyncio's): not when whoever started this
    process ignored it, nor when the program installed its own.
    """
    signals = []
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, _as_sigint):
        signals.append(signal.SIGTERM)
    if _is_ctrl_c_default(signal.getsignal(signal.SIGINT)):
        signals.append(signal.SIGINT)
    return signals


@contextlib.contextmanager
def _handling(signals: list[signal.Signals], handler: Callable[[int, FrameType | None], None]) -> Iterator[bool]:
    """Within the block ``handler`` handles ``signals``; yields False (and installs
    nothing) outside the main thread, where Python cannot install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}
    try:
        for sig in signals:
            signal.signal(sig, handler)
        yield True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def run_until_interrupted(main: Coroutine[Any, Any, T], discard: Callable[[T], None] | None = None) -> T:
    """``asyncio.run(main)``, where SIGINT and SIGTERM cancel ``main`` and then raise KeyboardInterrupt.

    ``main`` handles its cancellation (the engine stops its chains there).
    asyncio.run's own handler covers SIGINT only when SIGINT has Python's
    default handler: with SIGINT ignored, SIGTERM used to raise
    KeyboardInterrupt inside whatever callback the loop was running
    (httpstan's), which left the chains' tasks to be cancelled with a
    traceback each, or the process hung. A signal that arrives after
    ``main`` finished still interrupts: its result is passed to ``discard``.
    A second signal while ``main`` stops is not acted on: stopping is bounded.
    """
    received: list[int] = []

    async def guarded() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def cancel(signum: int, frame: FrameType | None) -> None:
            received.append(signum)
            if len(received) == 1 and task is not None:
                # Cancelled from the loop, not from inside whatever step the
                # signal interrupted.
                loop.call_soon_threadsafe(task.cancel)

        with _handling(_interrupt_signals(), cancel):
            return await main

    try:
        result = asyncio.run(guarded())
    except asyncio.CancelledError:
        if received:
            raise KeyboardInterrupt from None
        raise
    if received:
        if discard is not None:
            discard(result)
        raise KeyboardInterrupt
    return result


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


def _parents() -> dict[int, int]:
    """Parent pid of every process (Linux /proc; psutil elsewhere)."""
    proc = Path("/proc")
    if (proc / "self" / "stat").is_file():
        found: dict[int, int] = {}
        # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces.
        for entry in proc.iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    found[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        return found
    try:
        import psutil
    except ImportError:
        return {}
    # Asked for up front, a process that ends meanwhile gives None, not an error.
    listed = psutil.process_iter(["ppid"])
    return {process.pid: process.info["ppid"] for process in listed if process.info["ppid"] is not None}


def _children() -> list[int]:
    """Process ids of this process's children."""
    me = os.getpid()
    return sorted(pid for pid, parent in _parents().items() if parent == me)


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


def _trees(roots: set[int]) -> set[int]:
    """``roots`` and all their descendants that are still listed."""
    parents = _parents()
    found = {pid for pid in roots if pid in parents}
    while grown := {pid for pid, parent in parents.items() if parent in found} - found:
        found |= grown
    return found


def stop_process_trees(roots: set[int], timeout: float = 5.0) -> set[int]:
    """Stop ``roots`` and everything they started; returns the pids signalled.

    Each process is first frozen (SIGSTOP) while the trees are listed again,
    so that none starts another unseen; then all get SIGTERM (a compiler
    driver deletes its temporary files on it) and SIGCONT, and SIGKILL those
    still running after ``timeout`` seconds.
    """
    frozen: set[int] = set()
    for _ in range(10):
        new = _trees(roots | frozen) - frozen
        if not new:
            break
        for pid in new:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        frozen |= new
    for pid in frozen:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout
    while any(_running(pid) for pid in frozen) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in frozen:
        if _running(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    return frozen


@contextlib.contextmanager
def stop_started_processes_on_interrupt() -> Iterator[None]:
    """Within the block (a compile), Ctrl-C and SIGTERM first stop every process
    started in it, with all they started, then raise KeyboardInterrupt.

    The compiler runs in child processes. Ctrl-C in a terminal reaches them
    too (one process group), but SIGTERM or SIGINT sent to this process alone
    (``kill PID``, a job scheduler, ``timeout``) ended Python at once and left
    the compiler running on as an orphan for a minute or more, writing into
    the cache; and a Python-level interrupt alone would wait for the compiler
    to finish, since the build thread waits for it. Signals that the program
    handles or ignores itself are left alone (:func:`_interrupt_signals`).
    """
    signals = _interrupt_signals()
    before = set(_children())
    received: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1:
            stop_process_trees(set(_children()) - before)
            raise KeyboardInterrupt

    with _handling(signals, stop):
        yield


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


class _ChainStopper:
    """Stops the chains of one CmdStan fit, from a thread of its own, on a signal or on request.

    Within the block the thread waits on a socket that Python's C-level
    signal handler writes each signal's number to (``signal.set_wakeup_fd``),
    whichever thread the signal lands in. It cannot rely on the Python-level
    handler: that runs only when the main thread next runs bytecode, and
    during a fit the main thread sleeps in ``Thread.join`` (cmdstanpy's ``with
    ThreadPoolExecutor``) until the chains end. A signal caught by another
    thread, or just before the main thread went to sleep, did not wake it, and
    the fit ran on for minutes (the stand-in test in tests/test_faults.py
    hung in 6 of 100 runs signalled as the chains started).

    Once stopping, it kills this process's children that run one of
    ``executables`` and keeps at it until the caller has left the fit and the
    threads the fit started have ended: a chain counted by its parent may not
    have exec'd CmdStan yet, and with more chains than cores cmdstanpy's pool
    starts the queued chains as soon as the killed ones end. Threads that
    start no chain for ``quiet`` seconds (a pool worker left waiting for work)
    are not waited for.
    """

    def __init__(self, executables: list[Path], signals: list[signal.Signals], on_stop: Callable[[], None],
                 timeout: float = 60.0, quiet: float = 5.0) -> None:
        self.executables = executables
        self.signals = {int(sig) for sig in signals}
        self.on_stop = on_stop
        self.timeout = timeout
        self.quiet = quiet
        #: Set by the thread once a signal was read, or by :meth:`stop_and_wait`.
        self.requested = False
        self._left = False
        self._before = set(threading.enumerate())
        self._reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)
        self._previous_fd: int | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pystanmods-stop-chains", daemon=True)

    def __enter__(self) -> _ChainStopper:
        if self.signals and threading.current_thread() is threading.main_thread():
            self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
        self._left = True
        self._wake()
        self._thread.join(1.0)
        if not self._thread.is_alive():
            self._reader.close()
            self._writer.close()

    def stop_and_wait(self) -> None:
        """Stop the chains (the caller has left the fit) and wait until they are stopped."""
        # In this order: the thread ends its wait once either is set, and
        # must then find the request.
        self.requested = True
        self._left = True
        self._wake()
        self._done.wait(self.timeout + 10)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._writer.send(b"\0")

    def _run(self) -> None:
        try:
            while not self.requested and not self._left:
                try:
                    data = self._reader.recv(512)
                except OSError:
                    return
                for number in data:
                    if number and self._previous_fd is not None and self._previous_fd >= 0:
                        _forward(self._previous_fd, bytes([number]))
                    if number in self.signals:
                        self.requested = True
            if self.requested:
                self.on_stop()
                self._stop_chains()
        finally:
            self._done.set()

    def _stop_chains(self) -> None:
        deadline = last_seen = time.monotonic()
        deadline += self.timeout
        while True:
            if any([stop_children(executable) for executable in self.executables]):
                last_seen = time.monotonic()
            now = time.monotonic()
            if self._left:
                # Listed, not is_alive(): on Python 3.10-3.12 a join() cut short
                # by a signal's exception marks the joined thread stopped while
                # it runs on (CPython issue 90882), as the KeyboardInterrupt in
                # `with ThreadPoolExecutor` does to one of cmdstanpy's threads;
                # that thread then started a chain after this returned, and the
                # interpreter, not joining it either, exited and orphaned the
                # chain. A thread leaves the list only once its run() returned.
                started = [t for t in threading.enumerate() if t not in self._before and not t.daemon]
                if not started or now - last_seen > self.quiet:
                    return
            if now > deadline:
                return
            time.sleep(0.05)


def _forward(fd: int, data: bytes) -> None:
    """Pass a signal's byte on to the wakeup fd that was set before (an asyncio loop's, say)."""
    try:
        os.write(fd, data)
    except OSError:
        # On Windows a wakeup fd is a socket, which os.write cannot write to.
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=fd)
            try:
                sock.send(data)
            finally:
                sock.detach()


def stop_cmdstan_on_interrupt(sample: Callable[..., T]) -> Callable[..., T]:
    """Decorates the CmdStan engine's ``sample(program, directory, ...)``.

    Within it SIGTERM acts as Ctrl-C. On either, a thread of its own
    (:class:`_ChainStopper`) kills this process's children that run the
    program's executable, until the threads started by ``sample`` have
    ended: cmdstanpy's threads wait for their chains, a ``with
    ThreadPoolExecutor`` block waits for its threads even as the
    KeyboardInterrupt passes through it, and the interpreter waits for them
    at exit. Then a short KeyboardInterrupt is raised. The signal handler only
    raises KeyboardInterrupt: it takes no lock and starts nothing, and it need
    not run for the chains to stop. A CmdStan process killed by a signal (a
    crash) is reported with the model and cache entry.
    """

    @functools.wraps(sample)
    def wrapper(engine: Any, program: Any, directory: Path, *args: Any, **kwargs: Any) -> T:
        received: list[int] = []
        finished = [False]

        def interrupt(signum: int, frame: FrameType | None) -> None:
            received.append(signum)
            # Once the wrapper reports the interrupt, a handler run late (a
            # signal caught while the main thread slept) has nothing to add.
            if len(received) == 1 and not finished[0]:
                raise KeyboardInterrupt

        signals = _interrupt_signals()
        with _ChainStopper(engine.binaries(program, directory), signals,
                           functools.partial(quiet_logger_after_stop, "cmdstanpy")) as stopper, \
                _handling(signals, interrupt):
            try:
                result = sample(engine, program, directory, *args, **kwargs)
            except KeyboardInterrupt:
                pass
            except RuntimeError as error:
                # cmdstanpy's error for chains killed by the stop, when the
                # main thread woke up before the handler ran, is the interrupt.
                if not (stopper.requested or received):
                    cause = _signal_in(str(error))
                    if cause is None:
                        raise
                    raise chain_died(program.name, cause, directory) from error
            else:
                if not (stopper.requested or received):
                    return result
            finished[0] = True
            stopper.stop_and_wait()
            raise KeyboardInterrupt(f"sampling {program.name} was interrupted; its chains were stopped") from None

    return wrapper


__all__ = [
    "QuietAfterStop",
    "chain_died",
    "quiet_logger_after_stop",
    "sigterm_as_interrupt",
    "stop_children",
    "stop_cmdstan_on_interrupt",
]
