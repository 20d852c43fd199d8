"""Evaluation: the paper's AP metrics, and the Table 6 grid (every row on every split, mean ± std)."""
