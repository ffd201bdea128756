"""One fit per group of a frame (per lineage, per gene set, ...) on Dask workers."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pystanmods.data import DataError, plain
from pystanmods.engines.options import SamplerOptions
from pystanmods.models import Model, get_model
from pystanmods.outputs import check_directory

#: Columns of the summary table, in order.
SUMMARY_COLUMNS = (
    "group", "status", "action", "n_rows", "seconds", "sampling_seconds", "max_rhat", "min_ess_bulk",
    "min_ess_tail", "divergences", "treedepth_hits", "min_ebfmi", "diagnostics_ok", "problems", "seed",
    "compile_cached", "worker", "file", "error", "fingerprint",
)


@dataclass
class BatchResult:
    """What :func:`fit_groups` did.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per group (columns :data:`SUMMARY_COLUMNS`), also written to
        ``out/summary.csv``. ``action`` is ``fitted`` or ``skipped`` (finished
        by an earlier run with the same model, data and settings).
    out : pathlib.Path
        The output directory.
    """

    summary: pd.DataFrame
    out: Path

    @property
    def failed(self) -> list[str]:
        """Labels of the groups whose fit failed."""
        return list(self.summary.loc[self.summary["status"] != "ok", "group"])

    @property
    def ok(self) -> bool:
        return not self.failed

    def path(self, group: str) -> Path:
        """The netCDF file of a finished group."""
        row = self.summary.set_index("group").loc[str(group)]
        return self.out / str(row["file"])


def _stem(label: str) -> str:
    """A file-name-safe form of a group label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "group"


def _stems(labels: Sequence[str]) -> dict[str, str]:
    """Unique file stems; labels that clean to the same stem get a hash suffix."""
    stems = {label: _stem(label) for label in labels}
    counts = pd.Series(list(stems.values())).value_counts()
    for label, stem in stems.items():
        if counts[stem] > 1:
            stems[label] = f"{stem}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"
    return stems


def _frame_digest(frame: pd.DataFrame) -> str:
    """Hash of a frame's columns, dtypes and values (row order included)."""
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def group_seed(seed: int, label: str) -> int:
    """The seed of one group's fit: fixed by the run's seed and the group's label,
    so that a group's fit does not depend on which other groups are in the frame."""
    digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2**31 - 1)


def _write_json(path: Path, record: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    # Numpy values as plain numbers and lists; anything else json cannot write as its text.
    tmp.write_text(json.dumps(plain(record), indent=2, default=str))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def finished_file_ok(path: Path, record: Mapping[str, Any]) -> bool:
    """Whether a finished group's ``.nc`` is the file its record describes.

    The record (written with the fingerprint of the group's model, data and
    settings) holds the SHA-256 of the ``.nc`` as written; a truncated or
    replaced file differs, and its group is fitted again rather than skipped.
    Records from before the checksum are checked by opening the file.
    """
    if not path.is_file():
        return False
    if record.get("file_sha256"):
        return file_sha256(path) == record["file_sha256"]
    try:
        import arviz as az

        az.from_netcdf(os.fspath(path))
    except Exception:  # any reader error means the file is not a usable fit
        return False
    return True


def fit_one_group(
    model: str,
    frame: pd.DataFrame,
    label: str,
    out: str,
    stem: str,
    fit_kwargs: dict[str, Any],
) -> dict[str, Any]:
    """Fit one group and save it; runs on a worker.

    Never raises for a bad group: the error goes into the returned record.
    The netCDF is written to a temporary name and renamed when complete, so
    a worker killed mid-write leaves no file that looks finished.
    """
    from pystanmods.sampling import fit as fit_model

    directory = Path(out)
    marker = directory / f".{stem}.running"
    worker = f"{os.uname().nodename}:{os.getpid()}"
    marker.write_text(json.dumps({"pid": os.getpid(), "worker": worker, "started": time.time()}))
    start = time.perf_counter()
    record: dict[str, Any] = {"group": label, "worker": worker, "n_rows": len(frame), "seed": fit_kwargs.get("seed")}
    try:
        # PyStan writes "Building: found in cache" to stderr on every fit.
        with contextlib.redirect_stderr(io.StringIO()):
            fit = fit_model(model, frame, **fit_kwargs)
        diagnostics = fit.diagnostics(warn=False)
        final = directory / f"{stem}.nc"
        tmp = directory / f".{stem}.nc.tmp-{os.getpid()}"
        fit.to_netcdf(tmp)
        digest = file_sha256(tmp)
        os.replace(tmp, final)
        record.update(
            status="ok",
            file=final.name,
            file_sha256=digest,
            sampling_seconds=fit.sampling_seconds,
            compile_cached=int(fit.attrs.get("compile_cached", 0)),
            diagnostics_ok=diagnostics.ok,
            problems=" | ".join(diagnostics.problems),
            **diagnostics.as_dict(),
        )
    except Exception as error:  # a failing group must not stop the others
        record.update(
            status="failed",
            error=" ".join(f"{type(error).__name__}: {error}".split()),
            traceback=traceback.format_exc(),
        )
    finally:
        record["seconds"] = time.perf_counter() - start
        marker.unlink(missing_ok=True)
    return record


def fit_groups(
    model: str | Model,
    frame: pd.DataFrame,
    by: str | Sequence[str] = "lineage",
    *,
    out: str | os.PathLike[str],
    seed: int = 1,
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: bool = True,
    **fit_kwargs: Any,
) -> BatchResult:
    """Fit ``model`` once per group of ``frame`` on Dask workers.

    Parameters
    ----------
    model : str or Model
        A model of the catalogue.
    frame : pandas.DataFrame
        Tidy data with the model's columns and the ``by`` column(s).
    by : str or list of str
        Column(s) whose distinct values define the groups.
    out : path
        Directory of the results: ``<group>.nc`` (the fit as netCDF),
        ``<group>.json`` (its record) and ``summary.csv``. On a remote
        cluster it must be on a file system the workers share.
    seed : int
        Run seed; each group's fit gets :func:`group_seed` of it and its label.
    client : distributed.Client, optional
        Use this client. Otherwise ``scheduler`` (an address) or a new local
        cluster of ``n_workers`` processes.
    progress : bool
        Show a progress bar over groups.
    **fit_kwargs
        Passed to :func:`pystanmods.fit` for every group, with its defaults
        (the recommended program, fit()'s memory budget for log_lik/y_rep).

    Returns
    -------
    BatchResult
        Check ``.failed``: a failed group is recorded, not raised.

    Notes
    -----
    A group is skipped when ``<group>.json`` says it finished with the same
    fingerprint (a hash of the model's compiled program, the group's data and
    every setting) and its ``.nc`` matches the checksum recorded when it was
    written; failed, interrupted, changed and damaged groups are fitted again.
    """
    from pystanmods.batch.cluster import Task, run_tasks

    model = get_model(model)
    grouped = split_groups(frame, by)
    by = [by] if isinstance(by, str) else list(by)
    out_dir = check_directory(out, "batch output directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    settings, program_key = fit_settings(model, fit_kwargs)
    stems = _stems(list(grouped))
    base = {"model": model.name, "program_key": program_key, "by": by, "seed": seed, **settings}
    rows, todo = plan(grouped, stems, base, out_dir)

    tasks = {
        label: Task(f"pystanmods-fit-{stems[label]}-{fingerprint[:12]}", fit_one_group,
                    # The group's rows travel inside the task, not scattered to one
                    # worker, so that when a worker dies mid-fit (killed, out of
                    # memory) the scheduler still has them and reruns the task on
                    # another worker (up to distributed.scheduler.allowed-failures).
                    (model.name, grouped[label], label, str(out_dir), stems[label],
                     {**settings, "seed": group_seed(seed, label)}))
        for label, fingerprint in todo.items()
    }

    def handle(label: Any, record: Any, error: BaseException | None) -> str | None:
        if error is not None:
            record = {"group": label, "status": "failed", "n_rows": len(grouped[label]),
                      "error": " ".join(f"{type(error).__name__}: {error}".split())}
        rows[label] = settle(record, todo[label], out_dir, stems[label])
        return None if record["status"] == "ok" else f"pystanmods: group {label!r} failed: {record['error']}"

    run_tasks(tasks, handle, client=client, scheduler=scheduler, n_workers=n_workers,
              desc=f"{model.name} fits", unit="group", progress=progress)
    summary = pd.DataFrame([rows[label] for label in grouped], columns=list(SUMMARY_COLUMNS))
    tmp = out_dir / f".summary.csv.tmp-{os.getpid()}"
    summary.to_csv(tmp, index=False)
    os.replace(tmp, out_dir / "summary.csv")
    return BatchResult(summary=summary, out=out_dir)


def split_groups(frame: pd.DataFrame, by: str | Sequence[str]) -> dict[str, pd.DataFrame]:
    """The rows of each group, by label (``a|b`` for several columns), in sorted order."""
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in frame.columns]
    if missing:
        raise DataError(
            f"group column(s) {missing} not in the frame, whose columns are {', '.join(map(str, frame.columns))}"
        )
    if frame.empty:
        raise DataError("the frame has no rows to group")
    unlabeled = frame[by].isna().any(axis=1)
    if unlabeled.any():
        raise DataError(
            f"{int(unlabeled.sum())} of {len(frame)} rows have no value in group column(s) {by}; "
            "drop or label them before a batch fit"
        )
    return {
        "|".join(map(str, key if isinstance(key, tuple) else (key,))): part.reset_index(drop=True)
        for key, part in frame.groupby(by, sort=True)
    }


def check_fit_options(options: Mapping[str, Any], caller: str) -> None:
    """Refuse keyword arguments that are not settings of :func:`pystanmods.fit`,
    before any task is sent (on a worker each would fail every group)."""
    import inspect

    from pystanmods.sampling import fit

    parameters = inspect.signature(fit).parameters
    known = {f.name for f in dataclasses.fields(SamplerOptions)}
    unknown = sorted(k for k in options if k in ("model", "data") or (k not in parameters and k not in known))
    if unknown:
        raise TypeError(f"{caller}: {unknown} are not settings of each group's pystanmods.fit")


def fit_settings(model: Model, fit_kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Every group's keyword arguments of :func:`pystanmods.fit` (fit()'s own
    defaults, the parameterization and engine resolved), and the key of the
    compiled program, which is compiled here once before any task is sent:
    workers find it in the shared file-locked cache."""
    import inspect

    from pystanmods.engines import get_engine
    from pystanmods.sampling import compile_model, fit

    if "seed" in fit_kwargs:
        raise TypeError("fit_groups takes one run seed (seed=), and gives each group its own")
    check_fit_options(fit_kwargs, "fit_groups")
    parameters = inspect.signature(fit).parameters
    defaults = {
        name: p.default for name, p in parameters.items()
        if p.default is not inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_KEYWORD and name != "seed"
    }
    settings = {**defaults, **fit_kwargs, "show_progress": False}
    settings["parameterization"] = model.check_parameterization(settings["parameterization"])
    engine = get_engine(settings["engine"])
    settings["engine"] = engine.name
    if settings.get("columns"):
        settings["columns"] = dict(settings["columns"])
    compiled = compile_model(model, settings["parameterization"], engine)
    return settings, compiled.key


def plan(
    grouped: Mapping[str, pd.DataFrame], stems: Mapping[str, str], base: Mapping[str, Any], out_dir: Path,
    finished: Callable[[Path, Mapping[str, Any]], bool] = finished_file_ok,
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The groups an earlier run finished with the same fingerprint (their
    records, marked skipped) and the fingerprint of each group to fit.

    ``finished(path, record)`` says whether the output a record names
    (``out_dir / record["file"]``) is still the one it describes."""
    rows: dict[str, dict[str, Any]] = {}
    todo: dict[str, str] = {}
    for label, part in grouped.items():
        fingerprint = hashlib.sha256(
            json.dumps({**base, "group": label, "data": _frame_digest(part)}, sort_keys=True, default=str).encode()
        ).hexdigest()
        record = _read_json(out_dir / f"{stems[label]}.json")
        if (
            record
            and record.get("status") == "ok"
            and record.get("fingerprint") == fingerprint
            and finished(out_dir / str(record.get("file")), record)
        ):
            rows[label] = {**record, "action": "skipped"}
        else:
            todo[label] = fingerprint
    return rows, todo


def settle(record: dict[str, Any], fingerprint: str, out_dir: Path, stem: str) -> dict[str, Any]:
    """A finished group's record, checked against the shared output directory and saved."""
    record.update(fingerprint=fingerprint, action="fitted")
    # exists(), not is_file(): a group's output may be a directory of files.
    if record["status"] == "ok" and not (out_dir / record["file"]).exists():
        record.update(
            status="failed",
            error=f"the worker wrote {record['file']} but it is not in {out_dir} here: "
            "the output directory must be on a file system that the workers share",
        )
    _write_json(out_dir / f"{stem}.json", record)
    return record
