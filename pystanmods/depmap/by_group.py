"""A whole release fitted lineage by lineage on Dask: :func:`fit_gene_effects_by`.

Each lineage (``OncotreeLineage`` of the release's ``Model.csv``) is one
:func:`pystanmods.depmap.fit_gene_effects` of its own cell lines, run as one
Dask task through :func:`pystanmods.batch.cluster.run_tasks`. The records,
resume and failure isolation are those of :mod:`pystanmods.batch.groups`: a
lineage is skipped on a rerun when its record has the same fingerprint and
every file of its output directory still has the SHA-256 recorded when it was
written; a lineage that fails is recorded and the others go on.

Each lineage fit estimates its own guide efficacies and is scaled to its own
controls; docs/gene-effects.md ("A release by lineage") says why and what
that costs.

With ``method="pathfinder"`` each lineage is a first look by Stan's
Pathfinder instead of NUTS. Every file of such a run carries
:data:`~pystanmods.depmap.gene_effects.APPROXIMATE_PREFIX` (the lineage
folders and records too), so an approximate run and a NUTS run can share one
output directory without either reusing or overwriting the other's lineages.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import shutil
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pystanmods.batch.groups import (
    _stems,
    check_fit_options,
    file_sha256,
    finished_file_ok,
    group_seed,
    plan,
    settle,
)
from pystanmods.data import DataError
from pystanmods.depmap.gene_effects import APPROXIMATE_PREFIX
from pystanmods.depmap.logfc import select_sequences
from pystanmods.depmap.qc import CONTROL_FILES
from pystanmods.depmap.release import MODELS, PDNA, Release, read_release
from pystanmods.outputs import check_directory

#: Groupings a release can be fitted by.
BY = ("lineage",)
#: Files written at the top of the output directory, from every finished lineage.
COMBINED = ("gene_effect.csv", "gene_dependency.csv")
#: Columns of ``lineages.csv``, in order.
SUMMARY_COLUMNS = (
    "lineage", "status", "action", "reason", "cell_lines", "genes", "seconds", "fit_seconds", "max_rhat",
    "min_ess_bulk", "divergences", "diagnostics_ok", "worker_peak_rss_mb", "sampler_peak_rss_mb", "worker",
    "directory", "models", "inference", "pathfinder_pareto_k", "pathfinder_failed_paths",
)
#: The summary's file name; an approximate run writes it with the prefix.
SUMMARY_FILE = "lineages.csv"
#: Settings of :func:`pystanmods.pathfinder` a lineage's first look takes.
PATHFINDER_OPTIONS = ("paths", "draws", "iterations")
#: The ``lineage`` of the summary row that counts usable lines without one.
NO_LINEAGE = "(no lineage)"
#: The ``lineage`` of the summary row that counts lines no fit can use.
UNUSABLE = "(not usable)"
#: Fewest cell lines a lineage fit takes: the model's screen quality and
#: offsets are relative between lines.
MIN_LINES = 2


@dataclass
class LineageFits:
    """What :func:`fit_gene_effects_by` did.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per lineage (columns :data:`SUMMARY_COLUMNS`), also written to
        ``out/lineages.csv`` (``out/approximate_lineages.csv`` for a Pathfinder
        run, whose rows have no R-hat, ESS or divergences); ``status`` is ``ok``, ``failed`` or ``skipped``
        (too few cell lines, or the row of lines without a lineage), ``action``
        ``fitted`` or ``reused`` (finished by an earlier run).
    out : pathlib.Path
    prefix : str
        Of every file name the run wrote: :data:`APPROXIMATE_PREFIX` for a
        Pathfinder run, else empty.
    unassigned : list of str
        Usable cell lines that ``Model.csv`` gives no lineage.
    unusable : list of str
        Screened (or requested) lines without a replicate that passes QC and
        has a pDNA reference, or requested and not screened.
    """

    summary: pd.DataFrame
    out: Path
    prefix: str = ""
    unassigned: list[str] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)

    def _where(self, status: str) -> list[str]:
        rows = self.summary[(self.summary["status"] == status) & ~self.summary["lineage"].isin([NO_LINEAGE, UNUSABLE])]
        return list(rows["lineage"])

    @property
    def failed(self) -> list[str]:
        """Lineages whose fit failed."""
        return self._where("failed")

    @property
    def skipped(self) -> list[str]:
        """Lineages with fewer than :data:`MIN_LINES` cell lines, not fitted."""
        return self._where("skipped")

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def summary_path(self) -> Path:
        """Where :attr:`summary` was written."""
        return self.out / f"{self.prefix}{SUMMARY_FILE}"


def lineage_groups(
    release: Release, cell_lines: Sequence[str] | None = None
) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """The usable cell lines of each lineage, the usable lines without one, and the unusable lines.

    Usable lines have a replicate that passes QC and has a pDNA reference
    (what :func:`pystanmods.depmap.prepare` can use); the unusable ones are the
    other screened lines, and requested ``cell_lines`` that are not screened.
    The lineage is ``OncotreeLineage`` of ``Model.csv``.

    Raises
    ------
    FileNotFoundError
        The release has no ``Model.csv``.
    """
    if release.models is None:
        raise FileNotFoundError(
            f"{MODELS[0]} not found in release directory {release.directory}: a fit by lineage needs its "
            "ModelID and OncotreeLineage columns"
        )
    selection = select_sequences(release, cell_lines)
    lines = set(selection.replicates["cell_line_name"].astype(str))
    sequences = release.sequence_map
    screened = set(sequences.loc[sequences["cell_line_name"] != PDNA, "cell_line_name"].astype(str))
    wanted = screened if cell_lines is None else screened & {str(c).strip() for c in cell_lines}
    unusable = sorted(wanted - lines) + list(selection.cell_lines_not_found)
    lineage_of = release.models.set_index("ModelID")["OncotreeLineage"]
    groups: dict[str, list[str]] = {}
    unassigned: list[str] = []
    for line in sorted(lines):
        value = lineage_of.get(line)
        if value is None or pd.isna(value) or not str(value).strip():
            unassigned.append(line)
        else:
            groups.setdefault(str(value).strip(), []).append(line)
    return dict(sorted(groups.items())), unassigned, unusable


def outputs_ok(path: Path, record: Mapping[str, Any]) -> bool:
    """Whether every file a lineage's record lists is in ``path`` with its recorded SHA-256."""
    digests = record.get("files_sha256") or {}
    return bool(digests) and all(finished_file_ok(path / name, {"file_sha256": digest})
                                 for name, digest in digests.items())


def fit_lineage(
    release: str, label: str, lines: list[str], out: str, stem: str, options: dict[str, Any]
) -> dict[str, Any]:
    """Fit one lineage and write its outputs to ``out/stem``; runs on a worker.

    Never raises for a bad lineage: the error goes into the returned record.
    The outputs are written to a hidden directory and renamed when complete,
    so a worker killed mid-write leaves nothing that looks finished.
    """
    from pystanmods.depmap.gene_effects import fit_gene_effects

    directory = Path(out)
    marker = directory / f".{stem}.running"
    worker = f"{os.uname().nodename}:{os.getpid()}"
    marker.write_text(f"{worker} {time.time()}\n")
    tmp = directory / f".{stem}.tmp-{os.getpid()}"
    start = time.perf_counter()
    record: dict[str, Any] = {"group": label, "worker": worker, "cell_lines": len(lines), "models": ";".join(lines),
                              "seed": options.get("seed")}
    try:
        # PyStan writes "Building: found in cache" to stderr on every fit.
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            # Pathfinder shows no progress bar; NUTS's is turned off.
            quiet = {} if options.get("method") == "pathfinder" else {"show_progress": False}
            result = fit_gene_effects(release, cell_lines=lines, verbose=False, **quiet, **options)
        shutil.rmtree(tmp, ignore_errors=True)
        result.write(tmp)
        digests = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        final = directory / stem
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        record.update(
            status="ok",
            file=stem,
            files_sha256=digests,
            cell_lines=int(result.frame["cell_line"].nunique()),
            genes=int(result.frame["gene"].nunique()),
            fit_seconds=result.seconds.get("fit"),
            inference=result.fit.attrs.get("inference", "nuts"),
        )
        if result.fit.approximate:
            # No Markov chain, so no R-hat, ESS or divergences: what Pathfinder says of itself instead.
            record.update(pathfinder_pareto_k=result.fit.attrs["pathfinder_pareto_k"],
                          pathfinder_failed_paths=result.fit.attrs["pathfinder_failed_paths"])
        else:
            diagnostics = result.fit.diagnostics(warn=False)
            record.update(diagnostics_ok=diagnostics.ok, problems=" | ".join(diagnostics.problems),
                          **diagnostics.as_dict())
    except Exception as error:  # a failing lineage must not stop the others
        shutil.rmtree(tmp, ignore_errors=True)
        record.update(status="failed", error=" ".join(f"{type(error).__name__}: {error}".split()),
                      traceback=traceback.format_exc())
    finally:
        record["seconds"] = time.perf_counter() - start
        # Peaks so far of the worker (the release, the frame, the summaries) and
        # of its sampler processes: both are reused by the worker's later tasks.
        record["worker_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        record["sampler_peak_rss_mb"] = _children_peak_rss_mb()
        marker.unlink(missing_ok=True)
    return record


def _children_peak_rss_mb() -> float:
    """Sum of the peak resident memory (VmHWM) of this process's live children; NaN off Linux."""
    tasks = Path(f"/proc/{os.getpid()}/task")
    if not tasks.is_dir():
        return float("nan")
    children = set()
    for thread in tasks.iterdir():  # a child belongs to the thread that started it (a worker's thread)
        with contextlib.suppress(OSError):
            children.update((thread / "children").read_text().split())
    total = 0.0
    for pid in children:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += float(line.split()[1]) / 1024
    return total


def _release_digest(release: Release, controls: Iterable[Any]) -> dict[str, str]:
    """SHA-256 of every release file a lineage fit reads, and the control lists' identity."""
    names = [name for name in release.files.values() if name]
    names += [name for name in CONTROL_FILES.values() if (Path(release.directory) / name).is_file()]
    digest = {name: file_sha256(Path(release.directory) / name) for name in sorted(set(names))}
    for k, given in enumerate(controls):
        if isinstance(given, (str, os.PathLike)):
            digest[f"controls[{k}]"] = file_sha256(Path(given))
        elif given is not None:
            digest[f"controls[{k}]"] = ",".join(map(str, given))
    return digest


def combine(out: Path, summary: pd.DataFrame, prefix: str = "") -> dict[str, pd.DataFrame]:
    """Stack the finished lineages' matrices into ``out/gene_effect.csv`` and ``out/gene_dependency.csv``.

    Lineages have disjoint cell lines, so their rows stack; a gene a lineage
    did not fit is an empty cell in its rows. Stale combined files are removed
    when no lineage finished. ``prefix`` is that of every file name, the
    lineages' and the combined ones (:data:`APPROXIMATE_PREFIX` for Pathfinder).
    """
    done = summary[(summary["status"] == "ok")]
    combined: dict[str, pd.DataFrame] = {}
    for name in (prefix + name for name in COMBINED):
        target = out / name
        if done.empty:
            target.unlink(missing_ok=True)
            continue
        parts = [pd.read_csv(out / str(directory) / name, index_col=0) for directory in done["directory"]]
        matrix = pd.concat(parts, axis=0, join="outer", sort=False)
        repeated = matrix.index[matrix.index.duplicated()]
        if len(repeated):
            raise DataError(f"{name}: cell lines {list(repeated[:3])} appear in more than one lineage's fit")
        matrix.index.name = "ModelID"
        tmp = out / f".{name}.tmp-{os.getpid()}"
        matrix.to_csv(tmp)
        os.replace(tmp, target)
        combined[name] = matrix
    return combined


def fit_gene_effects_by(
    release: str | os.PathLike[str],
    by: str = "lineage",
    *,
    out: str | os.PathLike[str],
    seed: int = 1,
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: bool = True,
    **options: Any,
) -> LineageFits:
    """Fit the gene-effect model to each lineage of a release, on Dask workers.

    Parameters
    ----------
    release : path
        A release folder with ``Model.csv`` (on a file system the workers share).
    by : {"lineage"}
        The grouping; lineage (``OncotreeLineage``) only, for now.
    out : path
        Output directory: ``<lineage>/`` (every file of
        :meth:`pystanmods.depmap.GeneEffects.write`), ``<lineage>.json`` (its
        record), the combined ``gene_effect.csv`` and ``gene_dependency.csv``,
        and ``lineages.csv``. On a remote cluster it must be shared.
    seed : int
        Run seed; each lineage's fit gets :func:`pystanmods.batch.group_seed` of it.
    client, scheduler, n_workers
        The Dask cluster (:func:`pystanmods.batch.cluster.dask_client`):
        a client, a scheduler's address, or a local cluster of ``n_workers``.
    progress : bool
        Show a progress bar over lineages.
    **options
        :func:`pystanmods.depmap.fit_gene_effects`'s options (``genes``,
        ``cell_lines``: the lines to split, ``essential``, ``nonessential``,
        ``threshold``, ``prob``, ``parameterization``, ``use_pilot``,
        ``covariates``: not ``lineage``, constant within one; ``method``) and
        sampler settings (``chains``, ``iter_warmup``, ...), for every lineage.
        With ``method="pathfinder"`` the settings are Pathfinder's
        (:data:`PATHFINDER_OPTIONS`) and every file is named ``approximate_*``.

    Returns
    -------
    LineageFits
        Check ``.failed``: a failed lineage is recorded, not raised.
    """
    import inspect

    from pystanmods.batch.cluster import Task, run_tasks
    from pystanmods.depmap.gene_effects import COVARIATES, fit_gene_effects
    from pystanmods.sampling import compile_model

    if by not in BY:
        raise ValueError(f"by must be one of {list(BY)}, got {by!r}")
    if {"seed", "inits", "verbose", "show_progress"} & set(options):
        raise TypeError("fit_gene_effects_by takes one run seed (seed=) and gives each lineage its own seed "
                        "and inits; its workers print nothing (progress= is the bar over lineages)")
    # fit_gene_effects's own options with their defaults, so that the records'
    # fingerprint holds every setting; the rest are the sampler's.
    parameters = inspect.signature(fit_gene_effects).parameters
    options = {**{name: p.default for name, p in parameters.items()
                  if p.kind is p.KEYWORD_ONLY and name != "verbose"}, **options}
    settings = {k: v for k, v in options.items() if k not in parameters}
    approximate = options["method"] == "pathfinder"
    if approximate:
        unknown = sorted(set(settings) - set(PATHFINDER_OPTIONS))
        if unknown:
            raise TypeError(f"fit_gene_effects_by: {unknown} are not settings of a Pathfinder fit "
                            f"(method='pathfinder' takes {list(PATHFINDER_OPTIONS)})")
    elif options["method"] == "nuts":
        check_fit_options(settings, "fit_gene_effects_by")
    else:
        raise ValueError(f"method must be 'nuts' or 'pathfinder', got {options['method']!r}")
    prefix = APPROXIMATE_PREFIX if approximate else ""
    cell_lines = options.pop("cell_lines")
    options["covariates"] = covariates = list(options["covariates"])
    if "lineage" in covariates or any(c not in COVARIATES for c in covariates):
        raise ValueError(f"covariates of a fit by lineage must be among {[c for c in COVARIATES if c != 'lineage']}, "
                         f"got {covariates}")
    out_dir = check_directory(out, "output directory")
    rel = read_release(release)
    groups, unassigned, unusable = lineage_groups(rel, cell_lines)
    out_dir.mkdir(parents=True, exist_ok=True)
    to_fit = {label: lines for label, lines in groups.items() if len(lines) >= MIN_LINES}
    stems = {label: prefix + stem for label, stem in _stems(list(groups)).items()}
    # Compiled once here, before any task: workers find it in the shared cache. "recommended"
    # picks a lineage's program by its number of lines, so it may need either.
    programs = (("centered", "noncentered") if options["parameterization"] == "recommended"
                else (options["parameterization"],))
    if approximate:
        from pystanmods.engines import approximate as pathfinder_engine
        from pystanmods.models.gene_effect import GeneEffect

        # The Pathfinder front end is built once per program here, as NUTS's programs are below.
        built = [pathfinder_engine.program_for(GeneEffect(covariates=covariates), p) for p in programs]
        for program in built:
            pathfinder_engine.build(program, quiet=True)
        program_key = "+".join(pathfinder_engine.build_key(program) for program in built)
    else:
        program_key = "+".join(compile_model("gene_effect", p, options.get("engine"), quiet=True).key
                               for p in programs)
    given = (options["essential"], options["nonessential"])

    def as_given(controls: Any) -> Any:
        # A file as its absolute path (the workers' working directory differs), a list as strings.
        if controls is None or isinstance(controls, (str, os.PathLike)):
            return controls if controls is None else os.fspath(Path(controls).resolve())
        return [str(g) for g in controls]

    options.update(essential=as_given(given[0]), nonessential=as_given(given[1]),
                   genes=list(options["genes"]) if options["genes"] is not None else None)
    base = {"by": by, "program_key": program_key, "seed": seed, "options": options,
            "release": _release_digest(rel, given)}
    grouped = {label: pd.DataFrame({"cell_line": lines}) for label, lines in to_fit.items()}
    rows, todo = plan(grouped, {label: stems[label] for label in to_fit}, base, out_dir, finished=outputs_ok)
    for label in rows:
        rows[label] = {**rows[label], "action": "reused"}
    release_path = os.fspath(Path(release).resolve())
    # A run token in each key: a client kept between runs must not hand back
    # an earlier run's record for a lineage whose files have since been damaged.
    token = uuid.uuid4().hex[:8]
    tasks = {
        label: Task(f"pystanmods-depmap-{stems[label]}-{fingerprint[:12]}-{token}", fit_lineage,
                    (release_path, label, to_fit[label], str(out_dir), stems[label],
                     {**options, "seed": group_seed(seed, label)}))
        for label, fingerprint in todo.items()
    }

    def handle(label: Any, record: Any, error: BaseException | None) -> str | None:
        if error is not None:
            record = {"group": label, "status": "failed", "cell_lines": len(to_fit[label]),
                      "models": ";".join(to_fit[label]), "error": " ".join(f"{type(error).__name__}: {error}".split())}
        rows[label] = settle(record, todo[label], out_dir, stems[label])
        return None if record["status"] == "ok" else f"pystanmods: lineage {label!r} failed: {record['error']}"

    run_tasks(tasks, handle, client=client, scheduler=scheduler, n_workers=n_workers,
              desc="lineage fits", unit="lineage", progress=progress)

    table = []
    for label, lines in groups.items():
        if label in rows:
            record = rows[label]
            table.append({**record, "lineage": label, "reason": record.get("error", ""),
                          "directory": stems[label] if record["status"] == "ok" else ""})
        else:
            table.append({"lineage": label, "status": "skipped", "action": "", "cell_lines": len(lines),
                          "models": ";".join(lines),
                          "reason": f"{len(lines)} cell line; the gene_effect model needs at least {MIN_LINES}"})
            # A lineage that lost lines since an earlier run keeps no stale record.
            (out_dir / f"{stems[label]}.json").unlink(missing_ok=True)
    if unassigned:
        table.append({"lineage": NO_LINEAGE, "status": "skipped", "action": "", "cell_lines": len(unassigned),
                      "models": ";".join(unassigned),
                      "reason": f"no OncotreeLineage for these lines in {MODELS[0]}"})
    if unusable:
        table.append({"lineage": UNUSABLE, "status": "skipped", "action": "", "cell_lines": len(unusable),
                      "models": ";".join(unusable),
                      "reason": "no replicate passing QC with a pDNA reference, or requested and not screened"})
    summary = pd.DataFrame(table).reindex(columns=list(SUMMARY_COLUMNS))
    result = LineageFits(summary=summary, out=out_dir, prefix=prefix, unassigned=unassigned, unusable=unusable)
    tmp = out_dir / f".{result.summary_path.name}.tmp-{os.getpid()}"
    summary.to_csv(tmp, index=False)
    os.replace(tmp, result.summary_path)
    combine(out_dir, summary, prefix)
    return result


__all__ = ["LineageFits", "fit_gene_effects_by", "lineage_groups"]
