"""Run PyStan 3 from inside a running asyncio loop, as in a Jupyter notebook.

PyStan 3 calls ``asyncio.run``, which refuses to start while a loop is
running. Rather than patch asyncio globally (nest_asyncio), the call runs in a
worker thread that has no loop of its own, and the notebook's loop is left
alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_outside_loop(
    function: Callable[..., T], *args: object, on_interrupt: Callable[[], None] | None = None, **kwargs: object
) -> T:
    """Call ``function`` here, or in a fresh thread when an event loop is running.

    ``on_interrupt`` is called when Ctrl-C reaches the thread that waits for
    the helper thread, before waiting for that thread to end: it must make
    ``function`` return (the engine stops its chains).
    """
    if not loop_is_running():
        return function(*args, **kwargs)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pystanmods") as pool:
        future = pool.submit(function, *args, **kwargs)
        try:
            with _ctrl_c_interrupts(on_interrupt is not None):
                return future.result()
        except KeyboardInterrupt:
            if on_interrupt is not None:
                on_interrupt()
            raise


@contextlib.contextmanager
def _ctrl_c_interrupts(wanted: bool) -> Iterator[None]:
    """Within the block, Ctrl-C raises KeyboardInterrupt in the main thread.

    The loop's own SIGINT handler (asyncio.run's) only cancels its task, which
    cannot happen while this call blocks the loop: the first Ctrl-C would do
    nothing until the chains finished. Jupyter's kernel already raises.
    """
    if not wanted or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
