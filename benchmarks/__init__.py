"""Speed benchmarks of pystanmods against PyMC's default NUTS and nutpie.

Run with ``python -m benchmarks.run`` (``--quick`` for a smoke run). The
peers come from the ``bench`` extra: ``pip install -e '.[bench]'``.
"""
