"""Multi-label genre metrics: μAP, mAP, wAP, sAP and per-genre AP, in two conventions.

Conventions (the ``convention`` argument):

``"paper"``
    The area under the precision-recall curve by the trapezoidal rule,
    ``sklearn.metrics.auc(recall, precision)`` over ``precision_recall_curve``'s points (which end at
    recall 0, precision 1). This is what the DIViTA paper's Table 6 was computed with. The trapezoid
    rule rewards tied scores: a block of tied scores is joined by a straight line, so constant scores
    give ``(1 + prevalence) / 2`` and a random ranking scores well above the prevalence.
``"sklearn"``
    Standard step-wise average precision, ``sklearn.metrics.average_precision_score``:
    ``sum_n (R_n - R_{n-1}) P_n``. Constant scores give the prevalence.

Aggregates (all in [0, 1]; tables multiply by 100, see :func:`format_metrics`):

``uap``  (μAP) AP of all (trailer, genre) pairs pooled into one ranking.
``map``  (mAP) mean of the per-genre APs.
``wap``  (wAP) per-genre APs weighted by genre support ``y_true.sum(0) / y_true.sum()``.
``sap``  (sAP) mean over trailers of the AP of ranking one trailer's genres.

Edge cases (decided here, the same in both conventions):

* A genre with no positive label has an undefined AP: its own key is ``nan``. It counts as **0** in
  ``map`` (as the authors' code does, and as ``average_precision_score(average="macro")`` does) and
  has weight 0 in ``wap``.
* A trailer with no positive label has an undefined AP and is **skipped** in ``sap`` (the mean is
  over trailers with at least one genre). Every Trailers12k trailer has one; only subsets can lack one.
* Nothing to average (no positive label anywhere; no trailer with a positive) gives ``nan``.
  scikit-learn is never called on such inputs, so no warnings, and its version-dependent answers
  (nan recall in old releases, recall 1 and AP 0 in new ones) do not matter.
* Scores may be any finite real numbers (probabilities, logits): only their order and ties count.
  Labels must be 0/1 (bool, int or float). Anything else, NaN or inf scores, mismatched shapes, no
  samples, or a column count other than the number of genres raises :class:`ValueError`.

Speed: per-genre and pooled APs are scikit-learn calls (11 of them); sAP is computed for all trailers
at once by a vectorised form of the same curve (one ``precision_recall_curve`` per trailer would take
~1 s for 2000 trailers). It agrees with scikit-learn per trailer to float rounding (tested). About
15 ms for 2000 × 10 (mostly the 11 scikit-learn calls).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from divita.genres import GENRES

Convention = Literal["paper", "sklearn"]
CONVENTIONS: tuple[str, ...] = ("paper", "sklearn")
METRIC_NAMES: tuple[str, ...] = ("uap", "map", "wap", "sap")

__all__ = [
    "CONVENTIONS",
    "METRIC_NAMES",
    "format_metrics",
    "multilabel_metrics",
    "pr_curves",
    "step_ap",
    "trapezoid_ap",
]


# ---------------------------------------------------------------------------------------------------
# validation


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _as_labels(y_true, ndim: int) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != ndim:
        raise ValueError(f"y_true must be {ndim}-D, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"y_true is empty (shape {y.shape})")
    if y.dtype == bool:
        return y.astype(np.int8)
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise ValueError(f"y_true must hold 0/1 labels, got dtype {y.dtype}")
    bad = (y != 0) & (y != 1)
    if bad.any():
        values = np.unique(y[bad])[:5]
        raise ValueError(f"y_true must hold only 0/1 labels, found {values.tolist()}")
    return y.astype(np.int8)


def _as_scores(y_score, shape: tuple[int, ...], name: str = "y_prob") -> np.ndarray:
    s = np.asarray(y_score)
    if s.shape != shape:
        raise ValueError(f"{name} shape {s.shape} does not match y_true shape {shape}")
    if s.dtype == bool or not (np.issubdtype(s.dtype, np.integer) or np.issubdtype(s.dtype, np.floating)):
        raise ValueError(f"{name} must hold real-valued scores, got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    if not np.isfinite(s).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(s)).sum())} non-finite values (nan or inf)")
    return s


def _validate_1d(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    t = _as_labels(y_true, 1)
    return t, _as_scores(y_score, t.shape, "y_score")


def _validate_2d(y_true, y_prob, genres: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    t = _as_labels(y_true, 2)
    if t.shape[1] != len(genres):
        raise ValueError(f"y_true has {t.shape[1]} columns, expected one per genre ({len(genres)})")
    return t, _as_scores(y_prob, t.shape)


# ---------------------------------------------------------------------------------------------------
# one ranking


def _ap_1d(t: np.ndarray, s: np.ndarray, convention: str) -> float:
    """AP of one validated ranking; nan when there is no positive."""
    if not t.any():
        return float("nan")
    # imported here: scikit-learn (with scipy) takes ~1 s to import, which `divita train` need not pay before it
    # starts training
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve

    if convention == "sklearn":
        return float(average_precision_score(t, s))
    precision, recall, _ = precision_recall_curve(t, s, drop_intermediate=False)
    return float(auc(recall, precision))


def trapezoid_ap(y_true, y_score) -> float:
    """Paper convention: area under the precision-recall curve by the trapezoidal rule.

    ``sklearn.metrics.auc(recall, precision)`` of ``precision_recall_curve(y_true, y_score)``; the
    curve starts at (recall 0, precision 1). ``nan`` when ``y_true`` has no positive.
    """
    t, s = _validate_1d(y_true, y_score)
    return _ap_1d(t, s, "paper")


def step_ap(y_true, y_score) -> float:
    """Standard step-wise average precision (``sklearn.metrics.average_precision_score``).

    ``nan`` when ``y_true`` has no positive (scikit-learn would warn and return 0 or nan by version).
    """
    t, s = _validate_1d(y_true, y_score)
    return _ap_1d(t, s, "sklearn")


# ---------------------------------------------------------------------------------------------------
# every row at once (sAP)


def _rowwise_ap(t: np.ndarray, s: np.ndarray, convention: str) -> np.ndarray:
    """AP of each row of (M, L) labels/scores, every row holding at least one positive.

    The same points as ``precision_recall_curve`` per row: one per distinct score (the end of each
    block of tied scores, in decreasing score order), plus the start (recall 0, precision 1).
    """
    m, n_labels = t.shape
    order = np.argsort(-s, axis=1, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=1)
    tp = np.cumsum(np.take_along_axis(t, order, axis=1), axis=1, dtype=np.float64)
    n = np.broadcast_to(np.arange(1, n_labels + 1, dtype=np.float64), (m, n_labels))
    # a threshold point sits at the last position of each block of tied scores
    end = np.ones((m, n_labels), dtype=bool)
    end[:, :-1] = s_sorted[:, :-1] != s_sorted[:, 1:]
    # tp and count at the previous threshold point (0 before the first); both are non-decreasing
    tp_prev = np.zeros_like(tp)
    n_prev = np.zeros_like(tp)
    tp_prev[:, 1:] = np.maximum.accumulate(np.where(end, tp, 0.0), axis=1)[:, :-1]
    n_prev[:, 1:] = np.maximum.accumulate(np.where(end, n, 0.0), axis=1)[:, :-1]
    positives = tp[:, -1:]
    d_recall = np.where(end, (tp - tp_prev) / positives, 0.0)
    precision = tp / n
    if convention == "sklearn":
        return (d_recall * precision).sum(axis=1)
    precision_prev = np.where(n_prev > 0, tp_prev / np.maximum(n_prev, 1.0), 1.0)
    return (d_recall * (precision + precision_prev) * 0.5).sum(axis=1)


# ---------------------------------------------------------------------------------------------------
# all metrics


def multilabel_metrics(
    y_true,
    y_prob,
    convention: Convention = "paper",
    genres: Sequence[str] = GENRES,
) -> dict[str, float]:
    """``uap``, ``map``, ``wap``, ``sap`` and one AP per genre, all in [0, 1] (or nan, see module doc).

    y_true: (N, G) 0/1 labels; y_prob: (N, G) scores; G = ``len(genres)``, columns in ``genres`` order.
    Keys: ``METRIC_NAMES`` then ``genres`` (``"sci-fi"`` included), in that order.
    """
    _check_convention(convention)
    if set(genres) & set(METRIC_NAMES) or len(set(genres)) != len(genres):
        raise ValueError(f"genre names must be distinct and not one of {METRIC_NAMES}: {list(genres)}")
    t, s = _validate_2d(y_true, y_prob, genres)

    per_genre = np.array([_ap_1d(t[:, j], s[:, j], convention) for j in range(t.shape[1])])
    per_genre_0 = np.nan_to_num(per_genre, nan=0.0)
    support = t.sum(axis=0, dtype=np.float64)
    total = support.sum()

    uap = _ap_1d(t.ravel(), s.ravel(), convention)
    map_ = float(per_genre_0.mean())
    wap = float(per_genre_0 @ (support / total)) if total > 0 else float("nan")
    has_pos = t.any(axis=1)
    sap = float(_rowwise_ap(t[has_pos], s[has_pos], convention).mean()) if has_pos.any() else float("nan")

    out = {"uap": uap, "map": map_, "wap": wap, "sap": sap}
    out.update({g: float(v) for g, v in zip(genres, per_genre)})
    return out


def format_metrics(d: Mapping[str, float], percent: bool = True, ndigits: int = 2) -> dict[str, float]:
    """Round every value (×100 first when ``percent``), as the paper's tables report them. nan stays nan."""
    scale = 100.0 if percent else 1.0
    return {k: round(float(v) * scale, ndigits) for k, v in d.items()}


def pr_curves(y_true, y_prob, genres: Sequence[str] = GENRES) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-genre ``(precision, recall)`` from ``precision_recall_curve``, for plots.

    Keys are ``genres`` in order. A genre with no positive label has no curve: two empty arrays.
    """
    from sklearn.metrics import precision_recall_curve

    t, s = _validate_2d(y_true, y_prob, genres)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for j, g in enumerate(genres):
        if not t[:, j].any():
            curves[g] = (np.empty(0), np.empty(0))
            continue
        precision, recall, _ = precision_recall_curve(t[:, j], s[:, j], drop_intermediate=False)
        curves[g] = (precision, recall)
    return curves
