"""Datasets: the Trailers12k release (its files, Table 6, labels and splits), its download, and synthetic
release-format data for demos, tests and benchmarks."""
