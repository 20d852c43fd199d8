"""The paper's genre metrics (μAP, mAP, wAP, sAP, per-genre AP) in two AP conventions: a leaf that training,
evaluation, the studies and reporting all import (:mod:`divita.metrics.average_precision`)."""

from divita.metrics.average_precision import (
    CONVENTIONS,
    METRIC_NAMES,
    format_metrics,
    multilabel_metrics,
    pr_curves,
    step_ap,
    trapezoid_ap,
)

__all__ = ["CONVENTIONS", "METRIC_NAMES", "format_metrics", "multilabel_metrics", "pr_curves", "step_ap", "trapezoid_ap"]
