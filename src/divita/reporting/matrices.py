"""The label matrices the report's figures show: co-occurrence counts and prediction-error rates."""

from __future__ import annotations

import numpy as np


def cooccurrence_matrix(y_true: np.ndarray) -> np.ndarray:
    """(G, G) counts: [g, h] = trailers labelled both g and h; the diagonal = trailers labelled g."""
    y = np.asarray(y_true, dtype=np.int64)
    return y.T @ y


def prediction_error_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multi-label confusion as rates -> (rates (G+1, G), denominators (G+1, G)).

    Rows are true genres g, columns predicted genres h (predicted = probability ≥ the genre's threshold):

    * diagonal [g, g]: among trailers labelled g, the share predicted g (recall of g);
    * off-diagonal [g, h]: among trailers labelled g but **not** h, the share predicted h: how often
      a g-trailer gets the wrong genre h (false positives of h, by the genre the trailer really has);
    * the last row [h]: among all trailers not labelled h, the share predicted h (h's false-positive
      rate overall, the baseline each column's off-diagonal cells compare with).

    A cell with an empty denominator is nan.
    """
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    g = t.shape[1]
    num = np.zeros((g + 1, g))
    den = np.zeros((g + 1, g))
    for i in range(g):
        rows = t[:, i]
        for j in range(g):
            base = rows if i == j else rows & ~t[:, j]
            den[i, j] = base.sum()
            num[i, j] = (base & p[:, j]).sum()
    neg = ~t
    den[g] = neg.sum(0)
    num[g] = (neg & p).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    return rates, den
