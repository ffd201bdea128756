"""DepMap releases to tidy modeling frames."""
