"""A small simulated DepMap release, drawn from the ``gene_effect`` model's story.

:func:`simulated_release` writes the files :func:`pystanmods.depmap.read_release`
reads (Avana read counts, sequence and guide maps, copy number, ``Model.csv``
with ``OncotreeLineage`` and the two Achilles control lists), so that the
release-level commands can be run end to end without downloading a release.

The logFC of guide ``s`` of gene ``g`` in a replicate of line ``c`` is drawn as
the model says (:meth:`pystanmods.models.gene_effect.GeneEffect.simulate`):
``N(beta_c + omega_s + kappa_c x_gc + k_s q_c theta_gc, sigma_c)`` with
``theta_gc ~ N(mu_g + delta_g,lineage, tau_g)``. The guide efficacies ``k_s``
and offsets ``omega_s`` belong to the guide and are the same in every line.
Counts are then written so that :mod:`pystanmods.depmap.logfc` gives that logFC
back: the pDNA reference of a guide is its library share in reads per million,
and a replicate's counts are ``reference x 2^logFC - 1`` (the pseudocount) in
reads per million, times the sequencing depth, rounded. Normalising a replicate
to a million reads again shifts all its logFC by one constant (its library
size), as in a real screen; the model's line offsets and gene means absorb it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pystanmods.depmap.qc import CONTROL_FILES

#: Lineage names of the simulated release, in order (``Lineage<k>`` beyond them).
LINEAGES = ("Lung", "Skin", "Myeloid", "Bowel", "Breast", "CNS/Brain")


def _label(symbol: str, entrez: int) -> str:
    return f"{symbol} ({entrez})"


def simulated_release(
    directory: str | Path,
    n_lineages: int = 3,
    lines_per_lineage: int | Sequence[int] = 4,
    n_genes: int = 30,
    n_essential: int = 6,
    n_nonessential: int = 6,
    guides_per_gene: Sequence[int] = (2, 3, 4),
    n_replicates: int = 2,
    depth: float = 5e6,
    seed: int = 0,
) -> Path:
    """Write a small DepMap-layout release of several lineages into ``directory``.

    Parameters
    ----------
    directory : str or Path
        Created if needed; the release's files are written under their DepMap names.
    n_lineages : int
        Number of lineages (``OncotreeLineage`` in ``Model.csv``).
    lines_per_lineage : int or sequence of int
        Cell lines of each lineage (one number for all, or one per lineage).
    n_genes, n_essential, n_nonessential : int
        Genes in all, of which common-essential and nonessential controls
        (listed in ``AchillesCommonEssentialControls.csv`` and
        ``AchillesNonessentialControls.csv``). One further gene per lineage,
        ``SEL<k>``, is a dependency of lineage ``k`` alone (counted in ``n_genes``).
    guides_per_gene : sequence of int
        Guides per gene, cycled over the genes.
    n_replicates : int
        Replicates per cell line.
    depth : float
        Reads per sample.
    seed : int
        Seed of every draw.

    Returns
    -------
    Path
        The release directory. Its ``truth_gene_effect.csv`` holds the true
        ``theta_gc`` (rows ModelID, columns ``SYMBOL (ENTREZ_ID)``), which
        :func:`pystanmods.depmap.read_release` ignores.
    """
    from pystanmods.models.gene_effect import GeneEffect, efficacy_prior

    sizes = ([int(lines_per_lineage)] * n_lineages if np.isscalar(lines_per_lineage)
             else [int(n) for n in lines_per_lineage])
    if len(sizes) != n_lineages or min(sizes, default=0) < 1:
        raise ValueError(f"lines_per_lineage must be one count >= 1 or {n_lineages} of them, got {lines_per_lineage!r}")
    n_selective = n_lineages
    n_other = n_genes - n_essential - n_nonessential - n_selective
    if min(n_essential, n_nonessential) < 1 or n_other < 0:
        raise ValueError(
            f"n_genes ({n_genes}) must hold {n_essential} essential, {n_nonessential} nonessential controls "
            f"and {n_selective} lineage-selective genes, with at least one control of each kind"
        )
    model = GeneEffect()
    s = model.settings({})
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    # Genes: controls first, then one selective gene per lineage, then the rest.
    symbols = ([f"ESS{i + 1:02d}" for i in range(n_essential)] + [f"NON{i + 1:02d}" for i in range(n_nonessential)]
               + [f"SEL{k + 1}" for k in range(n_selective)] + [f"GENE{i + 1:02d}" for i in range(n_other)])
    entrez = [990001 + i for i in range(n_genes)]
    labels = [_label(g, e) for g, e in zip(symbols, entrez)]
    kind = np.array(["essential"] * n_essential + ["nonessential"] * n_nonessential
                    + ["selective"] * n_selective + ["other"] * n_other)
    # Essentials deplete about as a common essential does on theta's scale,
    # nonessentials not at all; the rest follow the model's default prior.
    mu_g = np.where(kind == "essential", rng.normal(-1.5, 0.2, n_genes),
                    np.where(kind == "nonessential", rng.normal(0.0, 0.05, n_genes),
                             np.where(kind == "selective", 0.0, rng.normal(s["mu_0"], s["sigma_mu"], n_genes))))
    tau_g = np.exp(rng.normal(s["mu_log_tau"], s["sigma_log_tau"], n_genes))
    tau_g[kind == "nonessential"] = 0.05

    per_gene = [int(guides_per_gene[i % len(guides_per_gene)]) for i in range(n_genes)]
    guide_gene = np.repeat(np.arange(n_genes), per_gene)
    n_guides = guide_gene.size
    sequences = ["".join(rng.choice(list("ACGT"), 20)) for _ in range(n_guides)]
    while len(set(sequences)) < n_guides:  # a clash is all but impossible; redraw if it happens
        sequences = ["".join(rng.choice(list("ACGT"), 20)) for _ in range(n_guides)]
    k_s = efficacy_prior(model.sigma_k).rvs(n_guides, random_state=rng)
    omega_s = rng.normal(0.0, s["sigma_omega"], n_guides)
    share = rng.lognormal(0.0, 0.3, n_guides)
    share /= share.sum()
    reference_rpm = 1e6 * share + 1.0  # what logfc.compute_logfc computes from the pDNA counts

    lineage_names = [LINEAGES[k] if k < len(LINEAGES) else f"Lineage{k + 1}" for k in range(n_lineages)]
    models, sequence_rows, count_rows, cn_rows, truth_rows = [], [], [], [], []
    pdna_counts = np.round(depth * share)
    for p in ("A", "B"):
        sequence_rows.append({"sequence_ID": f"pDNA-SIM_{p}", "ScreenID": "", "days": 0, "pDNA_batch": "SIM-1",
                              "Replicate": p, "ScreenType": "2DS", "cell_line_name": "pDNA", "Library": "Avana",
                              "PassesQC": True})
        count_rows.append(pdna_counts)
    number = 0
    for k, (lineage, size) in enumerate(zip(lineage_names, sizes)):
        selective = (kind == "selective") & (np.array(symbols) == f"SEL{k + 1}")
        for _ in range(size):
            number += 1
            line = f"ACH-9{number:05d}"
            models.append({"ModelID": line, "OncotreeLineage": lineage})
            theta = rng.normal(mu_g + np.where(selective, -1.2, 0.0), tau_g)
            log2_cn = rng.normal(0.0, s["copy_number_sd"], n_genes)
            log_q = rng.normal(0.0, s["sigma_q"])
            beta = rng.normal(0.0, s["sigma_beta"])
            kappa = rng.normal(s["kappa_0"], s["sigma_kappa"])
            sigma = np.exp(rng.normal(s["mu_sigma"], s["tau_sigma"]))
            mean = (beta + omega_s + kappa * log2_cn[guide_gene]
                    + k_s * np.exp(log_q) * theta[guide_gene])
            for r in range(n_replicates):
                replicate = "ABCDEFGH"[r]
                logfc = rng.normal(mean, sigma)
                rpm = np.maximum(reference_rpm * 2.0**logfc - 1.0, 0.0)
                count_rows.append(np.round(depth * rpm / rpm.sum()))
                sequence_rows.append({"sequence_ID": f"{line}_Rep{replicate}", "ScreenID": f"SC-{line}",
                                      "days": 21, "pDNA_batch": "SIM-1", "Replicate": replicate,
                                      "ScreenType": "2DS", "cell_line_name": line, "Library": "Avana",
                                      "PassesQC": True})
            cn_rows.append(pd.Series(2.0**log2_cn, index=labels, name=line))
            truth_rows.append(pd.Series(theta, index=labels, name=line))

    ids = [row["sequence_ID"] for row in sequence_rows]
    counts = pd.DataFrame(np.vstack(count_rows), index=pd.Index(ids, name="sequence_ID"), columns=sequences)
    counts.astype(int).to_csv(directory / "AvanaReadcounts.csv")
    pd.DataFrame(sequence_rows).to_csv(directory / "AvanaSequenceMap.csv", index=False)
    pd.DataFrame({"sgrna": sequences, "gene": [labels[g] for g in guide_gene], "nAlignments": 1.0,
                  "DropReason": "", "UsedByChronos": True}).to_csv(directory / "AvanaGuideMap.csv", index=False)
    pd.DataFrame(cn_rows).rename_axis("ModelID").to_csv(directory / "OmicsCNGene.csv")
    pd.DataFrame(models).to_csv(directory / "Model.csv", index=False)
    for role in ("essential", "nonessential"):
        pd.DataFrame({"Gene": [lab for lab, kd in zip(labels, kind) if kd == role]}).to_csv(
            directory / CONTROL_FILES[role], index=False)
    pd.DataFrame(truth_rows).rename_axis("ModelID").to_csv(directory / "truth_gene_effect.csv")
    return directory
