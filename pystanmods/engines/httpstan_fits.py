"""Run a PyStan posterior's chains and stream their draws from httpstan's fit files.

PyStan 3's ``Model.sample`` downloads each chain's whole output as JSON text
(httpstan decompresses it, the client keeps its own copy) and parses it from
there. The output also holds a "diagnostic" message per draw with the
unconstrained values, momenta and gradients, so the peak came to about 250
bytes per drawn value: a 4 x 1000-draw fit of Model 5 at 10^6 rows was killed
at 23.7 GB. Here the chains are started through the same httpstan endpoints
and payloads that PyStan uses, so the draws are the same, and each chain's
fit file (gzip-compressed JSON lines) is read one line at a time into a
preallocated float64 array. The file is then deleted: httpstan keeps every
seeded fit in its cache, and nothing reads a fit twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pystanmods.engines import samplers

SAMPLER = "stan::services::sample::hmc_nuts_diag_e_adapt"

_ITERATION = re.compile(r"Iteration:\s+(\d+)\s+/\s+(\d+)")
# Each message is one line; only these carry a draw (the "sample" topic also
# carries text such as "Adaptation terminated", as a list, not an object).
_DRAW_PREFIX = b'{"version":1,"topic":"sample","values":{'
_LOGGER_PREFIX = b'{"version":1,"topic":"logger"'


@dataclass
class ChainOutput:
    """One chain's saved draws, in Stan's column order."""

    columns: list[str]
    draws: np.ndarray  # (draw, column)
    messages: list[str] = field(default_factory=list)


def _is_routine(text: str) -> bool:
    """Progress and timing lines, which every chain writes."""
    body = text.split(":", 1)[-1]
    return (
        not body.strip()
        or body.startswith("Iteration:")
        or body.startswith(" Elapsed Time:")
        # continuation lines of the elapsed-time block
        or body.startswith(" " * 15)
    )


def read_chain(path: Any, num_draws: int) -> ChainOutput:
    """Read one chain's fit file into an array, one message at a time.

    Parameters
    ----------
    path : path-like
        httpstan's ``.jsonlines.gz`` file of the chain.
    num_draws : int
        Saved draws to expect, to allocate the array once.
    """
    columns: list[str] = []
    draws: np.ndarray | None = None
    messages: list[str] = []
    row = 0
    with gzip.open(path, "rb") as lines:
        for line in lines:
            if line.startswith(_DRAW_PREFIX):
                # json, not simdjson: draws may hold nan or inf, which Stan
                # writes as NaN and Infinity.
                values = json.loads(line)["values"]
                if draws is None:
                    columns = list(values)
                    draws = np.empty((num_draws, len(columns)))
                if row == num_draws:
                    raise RuntimeError(f"{path}: more than the {num_draws} draws expected")
                draws[row] = np.fromiter(values.values(), dtype=float, count=len(columns))
                row += 1
            elif line.startswith(_LOGGER_PREFIX):
                text = json.loads(line)["values"][0]
                if not _is_routine(text):
                    messages.append(text)
    if draws is None or row != num_draws:
        raise RuntimeError(f"{path}: {row} draws read, {num_draws} expected")
    return ChainOutput(columns=columns, draws=draws, messages=messages)


def payloads(data: dict[str, Any], seed: int | None, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """One create-fit request per chain, as PyStan 3's ``Model.sample`` makes them.

    ``kwargs`` are the keyword arguments of ``Model.sample``
    (``SamplerOptions.for_httpstan``); chains are numbered from 1, and all
    share the seed, from which Stan derives each chain's stream.
    """
    kwargs = dict(kwargs)
    num_chains = int(kwargs.pop("num_chains", 4))
    inits = kwargs.pop("init", [{} for _ in range(num_chains)])
    if len(inits) != num_chains:
        raise ValueError(f"init: {len(inits)} initial-value sets for {num_chains} chains")
    out = []
    for chain in range(1, num_chains + 1):
        payload = {**kwargs, "function": SAMPLER, "chain": chain, "data": data, "init": inits[chain - 1]}
        if seed is not None:
            payload["random_seed"] = seed
        out.append(payload)
    return out


async def run_chains(model_name: str, requests: list[dict[str, Any]], iterations: int, progress: bool) -> list[str]:
    """Start the chains in httpstan, wait for them and return their fit names.

    Parameters
    ----------
    model_name : str
        httpstan's ``models/<id>`` of the built posterior.
    requests : list of dict
        The chains' payloads (:func:`payloads`).
    iterations : int
        Warmup plus sampling iterations per chain, for the progress bar.
    progress : bool
        Show a progress bar over all chains.
    """
    import stan.common

    operations: list[dict[str, Any]] = []
    try:
        async with stan.common.HttpstanClient() as client:
            try:
                for payload in requests:
                    resp = await client.post(f"/{model_name}/fits", json=payload)
                    if resp.status == 422:
                        raise ValueError(str(resp.json()))
                    if resp.status != 201:
                        raise RuntimeError(resp.json()["message"])
                    operations.append(resp.json())
                await _follow(client, operations, iterations, progress)
            except asyncio.CancelledError:
                # Ctrl-C or SIGTERM (interrupts.run_until_interrupted
                # cancelled this task). Left to asyncio.run, httpstan's tasks
                # would be cancelled next, leaving the chain processes blocked
                # on sockets nobody reads; and the client must not close
                # first, or httpstan reports each unfinished chain. Stop the
                # chains while the server still runs.
                await _stop_chains()
                raise
    except asyncio.CancelledError:
        # Also when cancelled as the client opened or closed. Chains that
        # had finished leave fit files nobody will read.
        await _stop_chains()
        delete_fits([op["result"]["name"] for op in operations if "name" in (op.get("result") or {})])
        raise
    _raise_if_a_process_died(operations)
    names = [op["result"]["name"] for op in operations if "name" in op["result"]]
    failed = [op["result"] for op in operations if "name" not in op["result"]]
    if failed:
        # The chains that did finish leave fit files nobody will read.
        delete_fits(names)
        message = failed[0].get("message", str(failed[0]))
        if "Initialization failed" in message:
            raise RuntimeError("Initialization failed.")
        raise RuntimeError(message)
    return names


async def _follow(client: Any, operations: list[dict[str, Any]], iterations: int, progress: bool) -> None:
    """Poll the chains' operations until all are done, with a progress bar over all chains."""
    from tqdm.auto import tqdm

    done_iterations: dict[str, int] = {}
    with tqdm(total=iterations * len(operations), desc="Sampling", unit="it", disable=not progress) as bar:
        while not all(op["done"] for op in operations):
            for op in operations:
                if op["done"]:
                    continue
                resp = await client.get(f"/{op['name']}")
                op.update(resp.json())
                found = _ITERATION.findall(op["metadata"].get("progress") or "")
                if found:
                    now = int(found[-1][0])
                    bar.update(now - done_iterations.get(op["name"], 0))
                    done_iterations[op["name"]] = now
            await asyncio.sleep(0.05)


class ChainProcessDied(RuntimeError):
    """A chain process ended abruptly (a crash or a kill), taking its pool with it."""


def _raise_if_a_process_died(operations: list[dict[str, Any]]) -> None:
    """ChainProcessDied when a chain's process died (the pool broke), after
    deleting the fit files of chains that finished before."""
    results = [op["result"] for op in operations]
    if not any("BrokenProcessPool" in str(result.get("message", "")) for result in results):
        return
    import httpstan.cache

    for result in results:
        if "name" in result:
            httpstan.cache.delete_fit(result["name"])
    raise ChainProcessDied(samplers.crash_cause() or "ended abruptly")


async def _stop_chains(timeout: float = 5.0) -> None:
    """Kill the chain processes and let httpstan's tasks for them end.

    Those tasks see their chain's sockets close and the pool break, and end
    on their own; cancelled instead, each would print a traceback.
    """
    samplers.stop()
    chains = [task for task in asyncio.all_tasks() if _is_chain_task(task)]
    if chains:
        await asyncio.wait(chains, timeout=timeout)


def _is_chain_task(task: asyncio.Task) -> bool:
    """httpstan's task that relays one chain's output (``services_stub.call``)."""
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and code.co_name == "call" and code.co_filename.endswith("services_stub.py")


def delete_fits(fit_names: list[str]) -> None:
    """Delete fit files from httpstan's cache (those already gone are skipped)."""
    import httpstan.cache

    for name in fit_names:
        with contextlib.suppress(OSError, KeyError):
            httpstan.cache.delete_fit(name)


def collect(fit_names: list[str], num_draws: int) -> list[ChainOutput]:
    """Read the chains' fit files, then delete them from httpstan's cache.

    All of them are deleted, also when reading one fails or is interrupted.
    """
    import httpstan.cache

    try:
        return [read_chain(httpstan.cache.fit_path(name), num_draws) for name in fit_names]
    finally:
        delete_fits(fit_names)


def split_variables(columns: list[str], draws: np.ndarray, names: list[str],
                    dims: list[list[int]]) -> dict[str, np.ndarray]:
    """Stan's flat columns as one array per variable.

    Parameters
    ----------
    columns : list of str
        Column names of the draws: the sampler's ``*__`` columns, then each
        variable's elements in column-major order (``x.1.1, x.2.1, ...``).
    draws : numpy.ndarray
        Shape ``(chain, draw, column)``.
    names, dims : list
        The program's variables and their shapes, in output order.

    Returns
    -------
    dict
        Variable name to an array of shape ``(chain, draw, *dims)``.
    """
    start = sum(1 for c in columns if c.endswith("__"))
    out = {}
    for name, shape in zip(names, dims):
        size = int(np.prod(shape, dtype=int))
        first = columns[start] if size else None
        expected = name if not shape else f"{name}.{'.'.join('1' for _ in shape)}"
        if size and first != expected:
            raise RuntimeError(f"column {start} of the draws is {first!r}, expected {expected!r}")
        block = draws[:, :, start:start + size]
        # Column-major within a draw: reverse the shape, then the axes.
        block = block.reshape(*draws.shape[:2], *reversed(shape))
        out[name] = np.ascontiguousarray(block.transpose(0, 1, *range(block.ndim - 1, 1, -1)))
        start += size
    if start != draws.shape[2]:
        raise RuntimeError(f"{draws.shape[2] - start} columns of the draws belong to no variable")
    return out
