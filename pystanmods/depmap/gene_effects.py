"""A DepMap release to Chronos-style outputs with posteriors: ``fit_gene_effects``.

One call reads the release, computes logFC (keeping guides that cut several
sites of one gene, as DepMap does), fits the ``gene_effect`` model, and
returns the gene x cell-line effects scaled to the release's control genes,
with the probability of dependency, the guide efficacies and the per-line
control separation. :meth:`GeneEffects.write` lays them out as DepMap does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pystanmods.data import DataError
from pystanmods.depmap.covariates import COVARIATES as RELEASE_COVARIATES
from pystanmods.depmap.matrix import depmap_matrix, gene_effect_summaries
from pystanmods.depmap.prepare import prepare
from pystanmods.depmap.qc import CONTROL_FILES, control_separation, read_controls
from pystanmods.depmap.release import Release, read_release
from pystanmods.depmap.report import PrepareReport
from pystanmods.models.gene_effect import GeneEffect, jittered_inits, pilot

#: Release covariates a fit can regress the gene effects on (``depmap fit --covariates``):
#: every joinable one but copy number, which the model uses as cutting toxicity instead.
COVARIATES = tuple(c for c in RELEASE_COVARIATES if c != "copy_number")

#: From this many cell lines ``parameterization="recommended"`` is the centered program on pilot
#: scales, below it the non-centered one. Measured: the non-centered program mixes far better on
#: 4 and 10 lines, and stalls in warmup on the 41 lines of the DepMap sample, where the centered
#: one is used (docs/gene-effects.md, "Parameterizations"); 20 lies between, not measured finer.
CENTERED_FROM_LINES = 20

#: What each output file holds, in one sentence each (also written to README.txt).
OUTPUTS = {
    "gene_effect.csv": "posterior mean of each gene's effect per cell line, scaled so that the nonessential "
    "controls' median is 0 and the common essentials' is -1 (DepMap's CRISPRGeneEffect layout)",
    "gene_dependency.csv": "posterior probability that the scaled effect is below the threshold "
    "(DepMap's CRISPRGeneDependency layout, with posterior rather than mixture-model probabilities)",
    "gene_effect_long.csv": "every summary per gene x cell line: mean, sd, central interval, P(dependency), "
    "local false sign rate (the probability that the sign of the effect is the opposite of its mean's), "
    "the raw effect on the logFC scale before scaling, and the gene's convergence (the largest R-hat and "
    "smallest bulk ESS over its mean, spread and guides' parameters: above 1.01 its chains disagree, often "
    "because its guides do)",
    "guide_efficacy.csv": "per guide: posterior mean and sd of its efficacy k (0-1, the share of its gene's "
    "effect it shows) and of its offset (pDNA error)",
    "control_separation.csv": "per cell line: NNMD and AUROC of essential against nonessential controls",
    "covariate_slopes.csv": "only with covariates: per gene and covariate, the posterior mean, sd, central "
    "interval and P(slope < 0) of the slope of its effect on the covariate (per sd of the covariate, centred "
    "within the gene), and the population slope under gene '(all genes)'",
    "fit.nc": "the whole fit (ArviZ InferenceData, netCDF)",
    "qc.png": "control separation per line and guide efficacies, for a look",
}


#: The prefix of every file an approximate (Pathfinder) fit writes.
APPROXIMATE_PREFIX = "approximate_"


@dataclass
class GeneEffects:
    """The gene-effect outputs of one fit."""

    fit: Any
    frame: pd.DataFrame
    report: PrepareReport
    table: pd.DataFrame
    gene_labels: dict[str, str]
    guide_efficacy: pd.DataFrame
    control_separation: pd.DataFrame
    essential: list[str] = field(default_factory=list)
    nonessential: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    #: Rows dropped for lacking a requested covariate, per covariate (in order).
    covariate_drops: dict[str, int] = field(default_factory=dict)

    @property
    def covariate_slopes(self) -> pd.DataFrame:
        """Posterior summaries of each gene's covariate slopes (empty without covariates)."""
        return covariate_slope_table(self.fit, self.gene_labels, float(self.table.attrs.get("prob", 0.9)))

    @property
    def gene_effect(self) -> pd.DataFrame:
        """Scaled posterior means, rows ``ModelID``, columns ``SYMBOL (ENTREZ_ID)``."""
        return depmap_matrix(self.table, "mean", self.gene_labels)

    @property
    def gene_dependency(self) -> pd.DataFrame:
        """P(scaled effect < threshold), in the same layout."""
        return depmap_matrix(self.table, "p_dependency", self.gene_labels)

    def write(self, out: str | Path) -> list[Path]:
        """Write every file of :data:`OUTPUTS` into ``out`` (created if needed)."""
        from pystanmods.outputs import check_directory

        directory = check_directory(out)
        directory.mkdir(parents=True, exist_ok=True)
        approximate = getattr(self.fit, "approximate", False)

        def path(name: str) -> Path:
            # An approximate fit's files cannot be mistaken for a posterior's.
            return directory / (f"{APPROXIMATE_PREFIX}{name}" if approximate else name)

        written = []
        # The fit first: it is what took time.
        self.fit.to_netcdf(str(path("fit.nc")))
        written.append(path("fit.nc"))
        for name, frame in (("gene_effect.csv", self.gene_effect), ("gene_dependency.csv", self.gene_dependency)):
            frame.to_csv(path(name))
            written.append(path(name))
        long = self.table.assign(gene=self.table["gene"].map(self.gene_labels).fillna(self.table["gene"]))
        long.to_csv(path("gene_effect_long.csv"), index=False)
        efficacy = self.guide_efficacy.assign(inference=self.fit.attrs["inference"]) if approximate \
            else self.guide_efficacy
        efficacy.to_csv(path("guide_efficacy.csv"), index=False)
        self.control_separation.to_csv(path("control_separation.csv"))
        written += [path(n) for n in ("gene_effect_long.csv", "guide_efficacy.csv", "control_separation.csv")]
        slopes = self.covariate_slopes
        if len(slopes):
            slopes.to_csv(path("covariate_slopes.csv"), index=False)
            written.append(path("covariate_slopes.csv"))
        plot_qc(self, path("qc.png"))
        written.append(path("qc.png"))
        lines = [f"{path(name).name}: {text}." for name, text in OUTPUTS.items()
                 if name != "covariate_slopes.csv" or len(slopes)]
        if approximate:
            lines.insert(0, f"APPROXIMATE: these files come from {self.fit.attrs['inference']}, not from MCMC. "
                            "Its intervals and P(dependency) are not calibrated (too narrow as a rule) and it has "
                            "no R-hat or ESS: confirm any call that matters with a NUTS fit (without "
                            "--approximate).")
        lines.append(f"threshold of P(dependency): {self.table.attrs.get('threshold')}; "
                     f"central interval: {self.table.attrs.get('prob')}")
        (directory / "README.txt").write_text("\n".join(lines) + "\n")
        written.append(directory / "README.txt")
        return written


def _controls(release: Release, given: str | Path | Iterable[str] | None, role: str) -> list[str]:
    if given is None:
        path = Path(release.directory) / CONTROL_FILES[role]
        if not path.is_file():
            raise DataError(
                f"no {role} control list: the release has no {CONTROL_FILES[role]}; pass {role}= a list or file"
            )
        return read_controls(path)
    if isinstance(given, (str, Path)):
        return read_controls(given)
    return [str(g) for g in given]


def _gene_of_guide(frame: pd.DataFrame) -> pd.Series:
    """The gene each guide targets (one per guide in a prepared frame), by guide label."""
    return frame.drop_duplicates("sgrna").set_index("sgrna")["gene"].astype(str)


def guide_efficacy_table(fit: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Posterior mean and sd of each guide's efficacy k_s and offset omega_s."""
    posterior = fit.idata.posterior
    k = posterior["k_s"].stack(sample=("chain", "draw")).transpose("sgrna", "sample").to_numpy()
    omega = posterior["omega_s"].stack(sample=("chain", "draw")).transpose("sgrna", "sample").to_numpy()
    guides = [str(s) for s in posterior["sgrna"].to_numpy()]
    gene_of = _gene_of_guide(frame)
    return pd.DataFrame(
        {
            "sgrna": guides,
            "gene": gene_of.reindex(guides).to_numpy(),
            "efficacy_mean": k.mean(axis=1),
            "efficacy_sd": k.std(axis=1, ddof=1),
            "offset_mean": omega.mean(axis=1),
            "offset_sd": omega.std(axis=1, ddof=1),
        }
    )


def gene_convergence(fit: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Per gene, the largest R-hat and smallest bulk ESS over its own parameters.

    A gene's parameters are its mean ``mu_g``, its spread ``log_tau_g``, and the
    efficacy ``k_s`` and offset ``omega_s`` of each of its guides. A gene whose
    guides disagree can have two posterior modes that chains do not cross;
    its row is then the place to see it, while the fit's overall R-hat only
    says that some gene is unconverged.
    """
    import arviz as az

    posterior = fit.idata.posterior
    gene_of = _gene_of_guide(frame)
    rows = []
    for name, dim in (("mu_g", "gene"), ("log_tau_g", "gene"), ("k_s", "sgrna"), ("omega_s", "sgrna")):
        labels = [str(x) for x in posterior[dim].to_numpy()]
        genes = labels if dim == "gene" else gene_of.reindex(labels).to_numpy()
        rhat = az.rhat(posterior[[name]])[name].transpose(dim).to_numpy()
        ess = az.ess(posterior[[name]], method="bulk")[name].transpose(dim).to_numpy()
        rows.append(pd.DataFrame({"gene": genes, "rhat": rhat, "ess_bulk": ess}))
    per = pd.concat(rows, ignore_index=True).groupby("gene")
    return pd.DataFrame({"gene_max_rhat": per["rhat"].max(), "gene_min_ess_bulk": per["ess_bulk"].min()}).reset_index()


def fit_gene_effects(
    release: str | Path | Release,
    *,
    genes: Sequence[str] | None = None,
    cell_lines: Sequence[str] | None = None,
    essential: str | Path | Iterable[str] | None = None,
    nonessential: str | Path | Iterable[str] | None = None,
    threshold: float = -0.5,
    prob: float = 0.9,
    parameterization: str = "recommended",
    use_pilot: bool = True,
    covariates: Sequence[str] = (),
    verbose: bool = True,
    method: str = "nuts",
    **fit_options: Any,
) -> GeneEffects:
    """Fit the gene-effect matrix model to a DepMap release.

    Parameters
    ----------
    release : str, Path or Release
        A release folder (Avana read counts, sequence and guide maps, copy
        number, and the Achilles control lists unless given).
    genes, cell_lines : sequence of str, optional
        Subsets, as in :func:`pystanmods.depmap.prepare`; default all.
    essential, nonessential : list or file, optional
        Control genes for the scaling; default the release's
        ``AchillesCommonEssentialControls.csv`` and ``AchillesNonessentialControls.csv``.
    threshold, prob
        P(dependency) is P(scaled effect < threshold); ``prob`` is the mass of
        the central interval.
    parameterization : {"recommended", "centered", "noncentered"}
        Program of the ``gene_effect`` model. ``"recommended"`` (default) is
        the centered one from :data:`CENTERED_FROM_LINES` cell lines up (a
        release has every gene in tens of lines, where the non-centered
        program pins each hyperparameter between hundreds of data-fixed
        effects), and the non-centered one for fewer lines (small designs,
        where the centered one meets funnels).
    use_pilot : bool
        Sample the centered program on the scales of
        :func:`pystanmods.models.gene_effect.pilot`, from jittered pilot
        inits (unless ``inits`` is given). The posterior is the same; only
        warmup is shorter.
    covariates : sequence of str
        Regress each gene's effect on these gene x cell-line covariates of the
        release: ``rna`` (expression), ``is_mutated``, ``lineage`` (indicators
        against the most common lineage). Rows lacking one are dropped and
        counted (``covariate_drops``); expression covers far fewer genes than
        the screen, so ``rna`` can drop most of them.
    method : {"nuts", "pathfinder"}
        ``"pathfinder"``: a first look in a fraction of the time, by
        :func:`pystanmods.pathfinder` on the same program, scales and
        (jittered, one per path) inits as NUTS. Its intervals are not
        calibrated (narrower than NUTS's; ``benchmarks/results/pathfinder``),
        it has no R-hat or ESS, and every output says so: the files are
        written as ``approximate_*`` and ``README.txt`` opens with it.
    **fit_options
        Passed to :func:`pystanmods.fit` (``chains``, ``iter_warmup``,
        ``iter_sampling``, ``seed``, ``adapt_delta``, ``show_progress``, ...),
        or with Pathfinder to :func:`pystanmods.pathfinder` (``seed``,
        ``paths``, ``draws``, ``iterations``).

    Returns
    -------
    GeneEffects
    """
    from pystanmods.sampling import fit as run_fit

    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite effect size, got {threshold!r}")
    if not 0 < prob < 1:
        raise ValueError(f"prob must be between 0 and 1, got {prob!r}")
    if method not in ("nuts", "pathfinder"):
        raise ValueError(f"method must be 'nuts' or 'pathfinder', got {method!r}")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    rel = release if isinstance(release, Release) else read_release(release)
    essential_genes = _controls(rel, essential, "essential")
    nonessential_genes = _controls(rel, nonessential, "nonessential")
    covariates = list(covariates)
    unknown = [c for c in covariates if c not in COVARIATES]
    if unknown or len(set(covariates)) != len(covariates):
        raise ValueError(f"covariates must be distinct names among {list(COVARIATES)}, got {covariates}")
    joined = (["copy_number"] if rel.copy_number is not None else []) + covariates
    frame, report = prepare(rel, genes=genes, cell_lines=cell_lines, covariates=joined,
                            multi_aligned="keep", verbose=verbose)
    # Copy number where unknown enters as 0 (the program's header); a covariate
    # of the regression cannot be guessed, so its rows go, counted.
    drops: dict[str, int] = {}
    for name in covariates:
        lacking = frame[name].isna()
        drops[name] = int(lacking.sum())
        if lacking.any():
            genes_before = frame["gene"].nunique()
            frame = frame.loc[~lacking]
            if verbose:
                print(f"covariate {name}: dropped {drops[name]} rows without it "
                      f"({genes_before - frame['gene'].nunique()} of {genes_before} genes lost); {len(frame)} rows left")
    if len(frame) == 0:
        raise DataError(f"no rows left after dropping those without covariates {covariates}: {drops}")
    seconds["prepare"] = time.perf_counter() - start
    if parameterization == "recommended":
        n_lines = frame["cell_line"].nunique()
        parameterization = "centered" if n_lines >= CENTERED_FROM_LINES else "noncentered"
        if verbose:
            print(f"gene_effect: the {parameterization} program ({n_lines} cell lines; centered from "
                  f"{CENTERED_FROM_LINES})")
    model = GeneEffect(covariates=covariates)
    stan_data = model.prepare(frame, compute_log_lik=False, compute_y_rep=False)
    if use_pilot and parameterization == "centered":
        scales, inits = pilot(stan_data.data)
        stan_data.data.update(scales)
        if fit_options.get("inits") is None:
            # One start per chain, or per Pathfinder path.
            starts = int(fit_options.get("paths" if method == "pathfinder" else "chains", 4))
            fit_options["inits"] = jittered_inits(inits, scales, starts, fit_options.get("seed"))
    t = time.perf_counter()
    if method == "pathfinder":
        from pystanmods.sampling import pathfinder

        fit = pathfinder(model, stan_data, parameterization, quiet=not verbose, **fit_options)
    else:
        fit = run_fit(model, stan_data, parameterization=parameterization, **fit_options)
    seconds["fit"] = time.perf_counter() - t
    t = time.perf_counter()
    labels = (frame.drop_duplicates("gene").set_index("gene")["entrez_id"]
              .map(lambda e: f"{int(e)}" if pd.notna(e) else ""))
    gene_labels = {str(g): (f"{g} ({e})" if e else str(g)) for g, e in labels.items()}
    # Controls as the matrix's labels ("SYMBOL (ENTREZ_ID)"), whether the lists
    # gave labels or symbols; the fit's own gene coords are symbols.
    symbol_of = {label: symbol for symbol, label in gene_labels.items()}

    def as_labels(genes: list[str]) -> list[str]:
        return [g if g in symbol_of else gene_labels[g] for g in genes if g in symbol_of or g in gene_labels]

    ess, non = as_labels(essential_genes), as_labels(nonessential_genes)
    table = gene_effect_summaries(
        fit,
        essential=[symbol_of[g] for g in ess],
        nonessential=[symbol_of[g] for g in non],
        threshold=threshold,
        prob=prob,
    )
    attrs = dict(table.attrs)
    if not getattr(fit, "approximate", False):
        table = table.merge(gene_convergence(fit, frame), on="gene", how="left")
    else:
        table = table.assign(inference=fit.attrs["inference"])
    table.attrs.update(attrs)  # merge keeps no attrs: threshold, interval and the scaling per draw
    matrix = depmap_matrix(table, "mean", gene_labels)
    separation = control_separation(matrix, ess, non)
    efficacy = guide_efficacy_table(fit, frame)
    seconds["summaries"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start
    return GeneEffects(fit, frame, report, table, gene_labels, efficacy, separation,
                       essential=ess, nonessential=non, seconds=seconds, covariate_drops=drops)


def covariate_slope_table(fit: Any, gene_labels: dict[str, str] | None = None, prob: float = 0.9) -> pd.DataFrame:
    """Per gene and covariate: posterior mean, sd, central ``prob`` interval and
    P(slope < 0) of ``b_g``, and the population slope ``b_0`` as gene ``(all genes)``.
    Empty when the fit has no covariates."""
    posterior = fit.idata.posterior
    columns = ["gene", "covariate", "mean", "sd", "q_low", "q_high", "p_negative"]
    if "b_g" not in posterior:
        return pd.DataFrame(columns=columns)
    genes = [(gene_labels or {}).get(str(g), str(g)) for g in posterior["gene"].to_numpy()]
    # Draws as (sample, population + genes, covariate): row 0 is b_0, then each gene's b_g.
    b_0 = posterior["b_0"].stack(sample=("chain", "draw")).transpose("sample", "covariate").to_numpy()
    b_g = posterior["b_g"].stack(sample=("chain", "draw")).transpose("sample", "gene", "covariate").to_numpy()
    draws = np.concatenate([b_0[:, None, :], b_g], axis=1)
    q_low, q_high = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    stats = {"mean": draws.mean(axis=0), "sd": draws.std(axis=0, ddof=1), "q_low": q_low, "q_high": q_high,
             "p_negative": (draws < 0).mean(axis=0)}
    tables = [
        pd.DataFrame({"gene": ["(all genes)", *genes], "covariate": str(covariate),
                      **{name: values[:, k] for name, values in stats.items()}})
        for k, covariate in enumerate(posterior["covariate"].to_numpy())
    ]
    return pd.concat(tables, ignore_index=True)[columns]


def plot_qc(result: GeneEffects, path: str | Path) -> Path:
    """Control separation per cell line and the guide efficacies, in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qc = result.control_separation.sort_values("auroc")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    ax.barh(range(len(qc)), qc["auroc"], color="tab:blue")
    ax.set_yticks(range(len(qc)), qc.index, fontsize=6)
    ax.set_xlim(0.5, 1.0)
    ax.set_xlabel("AUROC, essential vs nonessential (higher is better)")
    ax.set_title(f"per cell line: median AUROC {qc['auroc'].median():.3f}, worst {qc['auroc'].min():.3f}")
    ax = axes[1]
    matrix = result.gene_effect
    ess = matrix.columns.intersection(result.essential)
    non = matrix.columns.intersection(result.nonessential)
    bins = np.linspace(np.nanmin(matrix.to_numpy()), np.nanmax(matrix.to_numpy()), 60)
    ax.hist(matrix[non].to_numpy().ravel(), bins=bins, alpha=0.6, density=True, label="nonessential controls")
    ax.hist(matrix[ess].to_numpy().ravel(), bins=bins, alpha=0.6, density=True, label="common essentials")
    ax.hist(matrix.to_numpy().ravel(), bins=bins, histtype="step", density=True, color="k", label="all genes")
    ax.axvline(0, color="grey", lw=0.8)
    ax.axvline(-1, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("scaled gene effect (posterior mean)")
    ax.set_title(f"median NNMD per line {result.control_separation['nnmd'].median():.2f}")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.hist(result.guide_efficacy["efficacy_mean"], bins=40, color="tab:green")
    ax.set_xlabel("guide efficacy k (posterior mean)")
    ax.set_title("guides: most near 1, weak guides below (Chronos-like)")
    if getattr(result.fit, "approximate", False):
        fig.suptitle(f"APPROXIMATE: {result.fit.attrs['inference']}, not MCMC", color="tab:red")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)

