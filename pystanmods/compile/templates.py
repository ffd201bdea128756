"""Render the Stan programs from the jinja2 templates in ``stan/templates``.

The rendered ``.stan`` files are committed so that a CmdStan user can use them
directly; ``python -m pystanmods.compile.templates`` rewrites them and a test
checks that rendering reproduces them byte for byte.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import jinja2

from pystanmods.models import PARAMETERIZATIONS, Model, all_models
from pystanmods.models.base import stan_dir


def slice_rows(expression: str, rows: list[str]) -> str:
    """``expression`` with every row-indexed variable in ``rows`` cut to ``start:end``.

    Used by the reduce_sum chunk: ``alpha_s[sgrna] .* rna`` becomes
    ``alpha_s[sgrna[start:end]] .* rna[start:end]``. Whole words only, so
    ``rna`` leaves ``sgrna`` alone.
    """
    pattern = r"\b(" + "|".join(re.escape(r) for r in rows) + r")\b"
    return re.sub(pattern, r"\1[start:end]", expression)


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(stan_dir() / "templates")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    environment.filters["slice_rows"] = slice_rows
    return environment


def render(model: Model, parameterization: str) -> str:
    """The Stan program of ``model`` in ``parameterization``."""
    model.check_parameterization(parameterization)
    template = _environment().get_template(model.template)
    text = template.render(parameterization=parameterization, **model.template_vars)
    # Macros leave blank lines where a block has nothing for this parameterization.
    text = re.sub(r"\n[ \t]*(?=\n)", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    text = re.sub(r"\{\n\n+", "{\n", text)
    text = re.sub(r"\n\n+(\s*\})", r"\n\1", text)
    return text.lstrip("\n")


def rendered_programs() -> dict[str, str]:
    """Program stem to rendered code, for every model and parameterization."""
    programs: dict[str, str] = {}
    for model in all_models():
        for parameterization in PARAMETERIZATIONS:
            programs.setdefault(model.program_name(parameterization), render(model, parameterization))
    return programs


def write_all(directory: Path | None = None) -> list[Path]:
    """Write every rendered program to ``directory`` (default: ``stan/``)."""
    directory = directory or stan_dir()
    written = []
    for stem, code in rendered_programs().items():
        path = directory / f"{stem}.stan"
        path.write_text(code)
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    for path in write_all():
        print(path, file=sys.stderr)
