"""The Stan programs of pystanmods, shipped inside the package as ``pystanmods.stan``."""
