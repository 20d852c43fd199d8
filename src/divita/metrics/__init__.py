"""The paper's genre metrics (μAP, mAP, wAP, sAP, per-genre AP) in two AP conventions: a leaf that training,
evaluation, the studies and reporting all import (:mod:`divita.metrics.average_precision`)."""

from __future__ import annotations

from divita.lazy import lazy_exports

_EXPORTS = {
    "CONVENTIONS": "average_precision",
    "METRIC_NAMES": "average_precision",
    "format_metrics": "average_precision",
    "multilabel_metrics": "average_precision",
    "pr_curves": "average_precision",
    "step_ap": "average_precision",
    "trapezoid_ap": "average_precision",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
