"""Which CmdStan the cmdstan engine would use, or a one-line failure.

``python -m pystanmods.cli.cmdstan_check``: ``make test-cmdstan`` runs it
first, so that a run against CmdStan says up front which installation it
tests, and stops at once when there is none.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> int:
    """Print ``CmdStan VERSION at PATH`` and return 0, or one error line and 1."""
    import cmdstanpy

    from pystanmods.engines.cmdstan import cmdstan_version

    try:
        path = Path(cmdstanpy.cmdstan_path())
    except (ValueError, RuntimeError, OSError) as error:
        reason = " ".join(str(error).split())
        print(
            f"pystanmods: error: no CmdStan installation found ({reason}); "
            "set CMDSTAN=/path/to/cmdstan, or run `make cmdstan` (needs internet)",
            file=sys.stderr,
        )
        return 1
    print(f"CmdStan {cmdstan_version(path) or '(version unknown)'} at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
