"""The Dask client that batch fits and SBC run on.

By default a :class:`distributed.LocalCluster` of worker processes on this
machine; given a scheduler address, any running Dask cluster (one started on
SLURM through dask-jobqueue, for example).

The embedded Stan engine (httpstan) runs chains in a process pool of its own,
and a daemonic process may not have children, so the local cluster's workers
are started as non-daemonic processes (``distributed.worker.daemon: False``).
Workers of a remote cluster must be started the same way (``dask worker
--no-nanny`` or the setting in their Dask config); :func:`dask_client`
checks this and says so instead of failing inside every fit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dask
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from pystanmods.data.errors import SetupError

PLUGIN_NAME = "pystanmods-httpstan-pool"


def _worker_is_daemon() -> bool:
    return bool(multiprocessing.current_process().daemon)


class HttpstanPoolCleanup(WorkerPlugin):
    """Worker plugin: end httpstan's sampler processes when a worker closes.

    httpstan keeps a module-level ``ProcessPoolExecutor`` whose forked
    processes outlive a worker that is closed by its nanny, and then hold
    the parent's pipes open; terminating them at teardown leaves nothing behind.
    """

    name = PLUGIN_NAME

    def teardown(self, worker: Any) -> None:  # noqa: D102 - plugin protocol
        import sys

        stub = sys.modules.get("httpstan.services_stub")
        executor = getattr(stub, "executor", None)
        if executor is None:
            return
        for process in list(getattr(executor, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                process.terminate()
        with contextlib.suppress(Exception):
            executor.shutdown(wait=False, cancel_futures=True)


def _has_plugin(dask_scheduler: Any) -> bool:
    return PLUGIN_NAME in dask_scheduler.worker_plugins


def _prepare(client: Any) -> Any:
    """Register the cleanup plugin and refuse daemonic workers."""
    # Registering it again would tear the old copy down on live workers and
    # with it their sampler pools, so register it once per cluster.
    if not client.run_on_scheduler(_has_plugin):
        client.register_plugin(HttpstanPoolCleanup(), name=PLUGIN_NAME)
    daemonic = [address for address, daemon in client.run(_worker_is_daemon).items() if daemon]
    if daemonic:
        raise SetupError(
            f"{len(daemonic)} Dask worker(s) run as daemonic processes ({daemonic[0]}, ...), which cannot start "
            "the Stan sampler's processes; start them with DASK_DISTRIBUTED__WORKER__DAEMON=False "
            "or `dask worker --no-nanny`"
        )
    return client


@contextlib.contextmanager
def dask_client(
    client: Any = None, scheduler: str | None = None, n_workers: int | None = None
) -> Iterator[Any]:
    """Yield a ready :class:`distributed.Client`.

    Parameters
    ----------
    client : distributed.Client, optional
        Used as it is (and left open).
    scheduler : str, optional
        Address of a running scheduler, e.g. ``tcp://10.0.0.5:8786``.
    n_workers : int, optional
        Worker processes of the local cluster (default: one per core), each
        with one thread, so one fit per worker at a time.
    """
    if client is not None:
        yield _prepare(client)
        return
    if scheduler:
        with Client(scheduler) as remote:
            yield _prepare(remote)
        return
    # The setting must hold for the cluster's whole life: a nanny that
    # restarts a killed worker reads it again.
    with dask.config.set({"distributed.worker.daemon": False}):
        with LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster, Client(cluster) as local:
            yield _prepare(local)


@dataclass(frozen=True)
class Task:
    """One call to run on a worker: ``function(*args)`` under the task key ``key``.

    The key names the result on the cluster, so it must change with anything
    that changes the result (a client kept between runs hands back the result
    of a task whose key it still holds).
    """

    key: str
    function: Callable[..., Any]
    args: tuple[Any, ...]


def run_tasks(
    tasks: Mapping[Hashable, Task],
    handle: Callable[[Hashable, Any, BaseException | None], str | None],
    *,
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    desc: str = "tasks",
    unit: str = "task",
    progress: bool = True,
) -> None:
    """Run ``tasks`` on Dask and pass each outcome to ``handle`` as it completes.

    The one Dask runner of :func:`pystanmods.batch.fit_groups` and
    :func:`pystanmods.sbc.run`. ``handle(name, result, error)`` gets the
    task's name and either its result or the exception that ended it (a worker
    lost beyond the scheduler's retries, a cancelled task); a message it
    returns is shown under the progress bar. Ctrl-C or an error in ``handle``
    cancels every task not yet finished, so nothing is left running.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    if not tasks:
        return
    with dask_client(client, scheduler, n_workers) as dask:
        futures = {
            dask.submit(task.function, *task.args, key=task.key, pure=False): name for name, task in tasks.items()
        }
        bar = tqdm(total=len(futures), desc=desc, unit=unit, disable=not progress)
        try:
            for future in as_completed(futures):
                try:
                    result, error = future.result(), None
                except Exception as failure:  # worker lost, task cancelled, ...
                    result, error = None, failure
                message = handle(futures[future], result, error)
                bar.update()
                if message:
                    bar.write(message)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            bar.close()
