"""httpstan's chain processes, in a pool that pystanmods can stop and replace.

httpstan runs each chain in a process of its module-level
``ProcessPoolExecutor`` (``httpstan.services_stub.executor``). Left as it is,
Ctrl-C during a fit hung for good: asyncio cancelled httpstan's tasks, nobody
read the chains' sockets any more, the chain processes blocked writing to
them, and the interpreter waited at exit for work that could not finish. Here
that executor is replaced by a :class:`SamplerPool`, which

- can be stopped: :func:`stop` kills its processes, and the next fit forks a
  new pool;
- keeps its processes' handles, so that a crashed chain is reported with the
  signal that ended it (:func:`crash_cause`);
- removes the Unix socket that each chain's output went through (httpstan
  binds one per chain in the temporary directory and never unlinks it): when
  the chain ends, when its submit fails, and when the pool is stopped. Only a
  SIGKILL of this process still leaves them;
- on Linux, has the kernel kill its processes when the thread that forked them
  ends, so that a crash or a SIGKILL of this process leaves no orphans.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import stat
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any

#: prctl(2) option: a signal the kernel sends to this process when the thread
#: that forked it ends.
_PR_SET_PDEATHSIG = 1

_POOL: SamplerPool | None = None
_LOCK = threading.Lock()


def _init_sampler(parent: int) -> None:  # pragma: no cover - runs in the chain process
    # As httpstan's own initializer: Ctrl-C in a terminal reaches the whole
    # process group, and the parent stops the chains itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent may have forked while SIGTERM had a Python handler
    # (interrupts.sigterm_as_interrupt), which can never run in a process busy
    # in C++: the executor ends its processes with SIGTERM, so it must kill.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the guard was set
            os._exit(1)


#: The function httpstan 4.13 submits for each chain (``services_stub.call``):
#: ``partial(_make_lazy_function_wrapper_helper, function_basename, model_name,
#: socket_filename, **kwargs)``.
_CHAIN_FUNCTION = ("httpstan.services_stub", "_make_lazy_function_wrapper_helper")


def _socket_of(function: Any) -> str | None:
    """The Unix socket path httpstan bound for the chain that ``function`` runs.

    None unless ``function`` has exactly the layout of httpstan 4.13's chain
    function: should httpstan change it, its sockets are left alone rather
    than some other argument taken for a path.
    """
    args: tuple[Any, ...] = ()
    # httpstan wraps a partial in a partial; CPython usually flattens the two.
    while isinstance(function, functools.partial):
        args = function.args + args
        function = function.func
    if (getattr(function, "__module__", None), getattr(function, "__name__", None)) != _CHAIN_FUNCTION:
        return None
    if len(args) != 3 or not all(isinstance(arg, str) for arg in args):
        return None
    name = os.path.basename(args[2])
    return args[2] if name.startswith("httpstan_") and name.endswith(".sock") else None


def _unlink_socket(path: str) -> None:
    """Remove a chain's socket file; anything else at that path is kept."""
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


class SamplerPool(concurrent.futures.ProcessPoolExecutor):
    """httpstan's chain-process pool, with handles to its processes kept."""

    def __init__(self) -> None:
        # The kernel's parent-death signal follows the thread that forks, and
        # the pool forks from the thread of its first submit (start()), which
        # is the main thread or a keeper thread that lives as long as the pool.
        super().__init__(
            mp_context=multiprocessing.get_context("fork"), initializer=_init_sampler, initargs=(os.getpid(),)
        )
        #: Set by stop(): ends the keeper thread that forked the processes, if any.
        self.released = threading.Event()
        #: pid to multiprocessing.Process; kept after the executor drops them,
        #: so that their exit codes can still be read.
        self.processes: dict[int, Any] = {}
        #: Socket paths of the chains submitted and not yet ended.
        self.sockets: set[str] = set()
        self._sockets_lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        socket = _socket_of(fn)
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            # A chain submitted after stop() (a signal as its fit started) or
            # to a broken pool never runs: httpstan has bound its socket all
            # the same.
            if socket is not None:
                _unlink_socket(socket)
            raise
        self.processes.update(getattr(self, "_processes", None) or {})
        if socket is not None:
            with self._sockets_lock:
                self.sockets.add(socket)
            future.add_done_callback(functools.partial(self._chain_ended, socket))
        return future

    def _chain_ended(self, socket: str, _future: Future) -> None:
        # The chain opened its connections when it started: once it has
        # ended, nobody needs the path.
        with self._sockets_lock:
            self.sockets.discard(socket)
        _unlink_socket(socket)

    def remove_sockets(self) -> None:
        """Remove the socket files of all chains not yet ended (their processes are gone)."""
        with self._sockets_lock:
            sockets, self.sockets = self.sockets, set()
        for socket in sockets:
            _unlink_socket(socket)


class _DropBrokenPool(logging.Filter):
    """httpstan logs every failed chain at CRITICAL with a traceback; when the
    pool broke (a stop or a crash) pystanmods raises its own one-line error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "BrokenProcessPool" not in record.getMessage()


def _forked_pool() -> SamplerPool:
    """A pool whose processes are forked now, each set to die with the thread that forked it.

    From the main thread, the pool forks there. From any other thread (a Dask
    worker runs its fits in a thread pool) it forks from a daemon thread that
    waits until the pool is stopped: the fit's own thread may end first,
    which would kill the chains of a later fit, and without the guard a
    worker killed mid-fit left its chains running as orphans.
    """
    def fork() -> SamplerPool:
        pool = SamplerPool()
        pool.submit(os.getpid).result()
        return pool

    if threading.current_thread() is threading.main_thread():
        return fork()
    made: Future = Future()

    def keep() -> None:
        try:
            pool = fork()
        except BaseException as error:
            made.set_exception(error)
            return
        made.set_result(pool)
        pool.released.wait()

    threading.Thread(target=keep, name="pystanmods-chain-pool", daemon=True).start()
    return made.result()


def start() -> SamplerPool:
    """Install a pool in httpstan and fork its processes now; later calls return it.

    Forked before this process loads a model: a model's extension module sets
    up Stan's autodiff stack for the thread that loads it, and inside a
    running event loop (a notebook) PyStan loads models in a helper thread, so
    a pool forked after that carried a thread whose stack was never set up and
    the first chain crashed. Forked first, each chain process loads its models
    itself.
    """
    global _POOL
    from httpstan import services_stub

    with _LOCK:
        if _POOL is None:
            pool = _forked_pool()
            previous = services_stub.executor
            services_stub.executor = pool
            if not isinstance(previous, SamplerPool):
                # httpstan's own pool has forked no process yet, unless a
                # chain ran outside pystanmods.
                previous.shutdown(wait=False, cancel_futures=True)
                logging.getLogger("httpstan").addFilter(_DropBrokenPool())
            _POOL = pool
        return _POOL


def stop(timeout: float = 5.0) -> None:
    """Kill the chain processes of the current pool; the next fit forks a new one.

    The chains hold nothing worth saving once their fit is abandoned, so they
    are killed outright (SIGKILL): a chain blocked writing to a socket nobody
    reads would not act on a gentler signal.
    """
    global _POOL
    with _LOCK:
        pool, _POOL = _POOL, None
    if pool is None:
        return
    processes = list(pool.processes.values())
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.kill()
    # Wait on the sentinels rather than join(): the executor's own thread
    # reaps these processes, and two waitpid calls on one pid race.
    pending = [p.sentinel for p in processes if getattr(p, "_popen", None) is not None]
    deadline = time.monotonic() + timeout
    with contextlib.suppress(OSError, ValueError):
        while pending and deadline > time.monotonic():
            ready = multiprocessing.connection.wait(pending, deadline - time.monotonic())
            pending = [s for s in pending if s not in ready]
    pool.shutdown(wait=False, cancel_futures=True)
    pool.released.set()
    # Their futures' callbacks would remove them too, but from the executor's
    # thread, which may not get to it before this process exits.
    pool.remove_sockets()


def crash_cause() -> str | None:
    """How a process of the current pool ended abnormally, e.g. ``"signal SIGBUS"``.

    The executor ends the surviving processes with SIGTERM when one dies, so
    that signal (and SIGKILL, from :func:`stop`) is not counted as a cause.
    """
    if _POOL is None:
        return None
    processes = list(_POOL.processes.values())
    with contextlib.suppress(OSError, ValueError):
        multiprocessing.connection.wait([p.sentinel for p in processes], 1.0)
    # The executor's thread may be reaping the same processes: a code it
    # has not recorded yet reads as None for a moment.
    for _ in range(20):
        for process in processes:
            code = getattr(process, "exitcode", None)
            if code is None or code == 0 or code in (-signal.SIGTERM, -signal.SIGKILL):
                continue
            if code < 0:
                try:
                    return f"signal {signal.Signals(-code).name}"
                except ValueError:
                    return f"signal {-code}"
            return f"exit status {code}"
        if all(getattr(p, "exitcode", None) is not None for p in processes):
            break
        time.sleep(0.05)
    return None
