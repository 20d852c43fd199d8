"""divita.metrics against scikit-learn and against hand-worked cases, in both conventions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import auc, average_precision_score, precision_recall_curve

from divita.genres import GENRES
from divita.metrics import (
    METRIC_NAMES,
    format_metrics,
    multilabel_metrics,
    pr_curves,
    step_ap,
    trapezoid_ap,
)


def sk_trapezoid(t, s) -> float:
    precision, recall, _ = precision_recall_curve(t, s)
    return float(auc(recall, precision))


SK = {"paper": sk_trapezoid, "sklearn": lambda t, s: float(average_precision_score(t, s))}


def random_case(seed: int, n: int = 300, prevalence: float = 0.3, quantize: int | None = None):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(GENRES))) < prevalence).astype(np.int64)
    y[~y.any(axis=1), 0] = 1  # every trailer has a genre, as in Trailers12k
    # scores correlated with labels, so APs are far from trivial
    p = 1 / (1 + np.exp(-(1.5 * y + rng.normal(size=y.shape))))
    if quantize:  # many ties, within and across genres
        p = np.round(p * quantize) / quantize
    return y, p


# ---------------------------------------------------------------------------------------------------
# hand-worked cases


def test_hand_worked_four_items():
    scores = [0.9, 0.8, 0.7, 0.6]
    labels = [1, 0, 1, 0]
    # step: precision at each positive, 1/1 and 2/3, averaged
    assert step_ap(labels, scores) == pytest.approx((1 + 2 / 3) / 2)
    # trapezoid over the (recall, precision) points (0,1) (.5,1) (.5,.5) (1,2/3) (1,.5):
    # 0.5 * (1 + 1) / 2 + 0 + 0.5 * (1/2 + 2/3) / 2 + 0 = 1/2 + 7/24 = 19/24
    assert trapezoid_ap(labels, scores) == pytest.approx(19 / 24)


def test_hand_worked_negative_first():
    # ranking [0, 1]: step AP = precision at the positive = 1/2;
    # trapezoid: (0,1) -> (0,0) (zero width) -> (1,1/2): 1 * (0 + 1/2) / 2 = 1/4
    assert step_ap([0, 1], [0.9, 0.1]) == pytest.approx(0.5)
    assert trapezoid_ap([0, 1], [0.9, 0.1]) == pytest.approx(0.25)


def test_hand_worked_partial_tie():
    # scores [.3, .1, .1], labels [1, 0, 1]: points (0,1) (.5,1) (1,2/3)
    # step: .5 * 1 + .5 * 2/3 = 5/6; trapezoid: .5 * (1 + 1)/2 + .5 * (1 + 2/3)/2 = 1/2 + 5/12 = 11/12
    assert step_ap([1, 0, 1], [0.3, 0.1, 0.1]) == pytest.approx(5 / 6)
    assert trapezoid_ap([1, 0, 1], [0.3, 0.1, 0.1]) == pytest.approx(11 / 12)


@pytest.mark.parametrize("labels", [[1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 1, 0, 1, 0, 0], [1, 1, 1]])
def test_constant_scores(labels):
    prevalence = sum(labels) / len(labels)
    scores = np.full(len(labels), 0.42)
    assert step_ap(labels, scores) == pytest.approx(prevalence)
    # one tie block: a straight line from (0, 1) to (1, prevalence)
    assert trapezoid_ap(labels, scores) == pytest.approx((1 + prevalence) / 2)


@pytest.mark.parametrize("labels", [[1, 0], [1, 1, 0, 0, 0], [0, 1, 0, 1, 1, 0, 0, 0, 1]])
def test_perfect_ranking(labels):
    labels = np.array(labels)
    scores = labels + np.linspace(0, 0.5, len(labels))  # every positive above every negative
    assert step_ap(labels, scores) == pytest.approx(1.0)
    assert trapezoid_ap(labels, scores) == pytest.approx(1.0)


def test_multilabel_hand_worked():
    # 3 trailers x 10 genres; only action (col 0) and comedy (col 2) have positives
    y = np.zeros((3, 10), dtype=int)
    y[0, 0] = y[1, 0] = y[2, 2] = 1
    p = np.zeros((3, 10))
    p[:, 0] = [0.9, 0.2, 0.5]
    p[:, 2] = [0.1, 0.1, 0.8]  # comedy ranking: its positive first -> 1.0 in both
    # action ranking [1 (.9), 0 (.5), 1 (.2)]: points (0,1) (.5,1) (.5,.5) (1,2/3)
    # step: .5 * 1 + .5 * 2/3 = 5/6; trapezoid: .5 + .5 * (1/2 + 2/3)/2 = 19/24
    for conv, action in (("sklearn", 5 / 6), ("paper", 19 / 24)):
        d = multilabel_metrics(y, p, convention=conv)
        assert list(d) == list(METRIC_NAMES) + list(GENRES)
        assert d["action"] == pytest.approx(action)
        assert d["comedy"] == pytest.approx(1.0)
        assert all(math.isnan(d[g]) for g in GENRES if g not in ("action", "comedy"))
        # absent genres count as 0 in mAP, weight 0 in wAP (support 2 and 1 of 3)
        assert d["map"] == pytest.approx((action + 1.0) / 10)
        assert d["wap"] == pytest.approx(2 / 3 * action + 1 / 3 * 1.0)
        # every trailer's own positive is its top score
        assert d["sap"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------
# against scikit-learn on random data


@pytest.mark.parametrize("convention", ["paper", "sklearn"])
@pytest.mark.parametrize("seed,quantize", [(0, None), (1, None), (2, 10), (3, 3)])
def test_against_sklearn_random(convention, seed, quantize):
    y, p = random_case(seed, quantize=quantize)
    sk = SK[convention]
    d = multilabel_metrics(y, p, convention=convention)
    per_genre = np.array([sk(y[:, j], p[:, j]) for j in range(len(GENRES))])
    for j, g in enumerate(GENRES):
        assert d[g] == pytest.approx(per_genre[j], abs=1e-12)
    assert d["uap"] == pytest.approx(sk(y.ravel(), p.ravel()), abs=1e-12)
    assert d["map"] == pytest.approx(per_genre.mean(), abs=1e-12)
    weights = y.sum(0) / y.sum()
    assert d["wap"] == pytest.approx(float(per_genre @ weights), abs=1e-12)
    assert d["sap"] == pytest.approx(np.mean([sk(y[i], p[i]) for i in range(len(y))]), abs=1e-12)
    if convention == "sklearn":  # and sklearn's own multilabel averages
        assert d["uap"] == pytest.approx(average_precision_score(y, p, average="micro"), abs=1e-12)
        assert d["map"] == pytest.approx(average_precision_score(y, p, average="macro"), abs=1e-12)
        assert d["wap"] == pytest.approx(average_precision_score(y, p, average="weighted"), abs=1e-12)
        assert d["sap"] == pytest.approx(average_precision_score(y, p, average="samples"), abs=1e-12)


@pytest.mark.parametrize("convention", ["paper", "sklearn"])
def test_sap_rows_with_heavy_ties(convention):
    # few distinct scores per row: ties inside rows, at the top, at the bottom, whole rows constant
    rng = np.random.default_rng(7)
    y = (rng.random((400, 10)) < 0.4).astype(int)
    y[~y.any(axis=1), 3] = 1
    p = rng.integers(0, 3, size=y.shape).astype(np.float32)
    p[:20] = 1.0
    sk = SK[convention]
    expected = np.mean([sk(y[i], p[i]) for i in range(len(y))])
    assert multilabel_metrics(y, p, convention=convention)["sap"] == pytest.approx(expected, abs=1e-12)


def test_paper_convention_rewards_ties():
    y, p = random_case(4)
    const = np.full(p.shape, 0.5)
    prev = y.mean(0)
    d_paper = multilabel_metrics(y, const, "paper")
    d_step = multilabel_metrics(y, const, "sklearn")
    for j, g in enumerate(GENRES):
        assert d_paper[g] == pytest.approx((1 + prev[j]) / 2)
        assert d_step[g] == pytest.approx(prev[j])
    assert d_paper["uap"] == pytest.approx((1 + y.mean()) / 2)


def test_input_types_accepted():
    y, p = random_case(5, n=50)
    ref = multilabel_metrics(y, p)
    assert multilabel_metrics(y.astype(bool), p) == ref
    assert multilabel_metrics(y.astype(np.float32), p.tolist()) == ref
    # logits rank the same as probabilities
    logits = np.log(p / (1 - p))
    for k, v in multilabel_metrics(y, logits).items():
        assert v == pytest.approx(ref[k], abs=1e-12)


# ---------------------------------------------------------------------------------------------------
# edge cases


@pytest.mark.parametrize("convention", ["paper", "sklearn"])
def test_genre_without_positives(convention):
    y, p = random_case(6)
    y[:, GENRES.index("sci-fi")] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn is not called on the empty genre: no warning
        d = multilabel_metrics(y, p, convention=convention)
    assert math.isnan(d["sci-fi"])
    others = [d[g] for g in GENRES if g != "sci-fi"]
    assert d["map"] == pytest.approx(sum(others) / 10)  # counted as 0, as the authors do
    weights = y.sum(0) / y.sum()
    assert d["wap"] == pytest.approx(sum(d[g] * w for g, w in zip(GENRES, weights) if g != "sci-fi"))
    if convention == "sklearn":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert d["map"] == pytest.approx(average_precision_score(y, p, average="macro"))
    assert math.isnan(step_ap(np.zeros(5), np.arange(5.0)))
    assert math.isnan(trapezoid_ap(np.zeros(5), np.arange(5.0)))


@pytest.mark.parametrize("convention", ["paper", "sklearn"])
def test_trailers_without_positives_are_skipped_in_sap(convention):
    y, p = random_case(8, n=100)
    d_ref = multilabel_metrics(y, p, convention=convention)
    y2 = np.vstack([y, np.zeros((7, 10), dtype=int)])
    p2 = np.vstack([p, np.random.default_rng(0).random((7, 10))])
    d = multilabel_metrics(y2, p2, convention=convention)
    assert d["sap"] == pytest.approx(d_ref["sap"], abs=1e-12)


def test_nothing_to_average():
    d = multilabel_metrics(np.zeros((4, 10)), np.random.default_rng(0).random((4, 10)))
    assert all(math.isnan(v) for k, v in d.items() if k != "map")
    assert d["map"] == 0.0


@pytest.mark.parametrize(
    "y,p,match",
    [
        (np.zeros((4, 10)), np.zeros((4, 9)), "does not match"),
        (np.zeros((4, 9)), np.zeros((4, 9)), "columns"),
        (np.zeros(10), np.zeros(10), "2-D"),
        (np.zeros((0, 10)), np.zeros((0, 10)), "empty"),
        (np.full((4, 10), 2), np.zeros((4, 10)), "0/1"),
        (np.full((4, 10), 0.5), np.zeros((4, 10)), "0/1"),
        (np.full((4, 10), -1), np.zeros((4, 10)), "0/1"),
        (np.array([["a"] * 10] * 4), np.zeros((4, 10)), "0/1"),
        (np.zeros((4, 10)), np.full((4, 10), np.nan), "non-finite"),
        (np.zeros((4, 10)), np.full((4, 10), np.inf), "non-finite"),
        (np.zeros((4, 10)), np.array([["x"] * 10] * 4), "real-valued"),
    ],
)
def test_validation_errors(y, p, match):
    with pytest.raises(ValueError, match=match):
        multilabel_metrics(y, p)


def test_validation_errors_1d_and_options():
    with pytest.raises(ValueError, match="convention"):
        multilabel_metrics(np.zeros((2, 10)), np.zeros((2, 10)), convention="trapz")
    with pytest.raises(ValueError, match="does not match"):
        step_ap([1, 0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="0/1"):
        trapezoid_ap([1, 2, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="1-D"):
        trapezoid_ap([[1, 0]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="distinct"):
        multilabel_metrics(np.zeros((2, 2)), np.zeros((2, 2)), genres=("map", "drama"))


# ---------------------------------------------------------------------------------------------------
# helpers


def test_format_metrics():
    d = {"uap": 0.123456, "map": float("nan"), "action": 1.0}
    f = format_metrics(d)
    assert f["uap"] == 12.35 and f["action"] == 100.0 and math.isnan(f["map"])
    assert format_metrics(d, percent=False, ndigits=3)["uap"] == 0.123


def test_pr_curves():
    y, p = random_case(9, n=80)
    y[:, GENRES.index("horror")] = 0
    curves = pr_curves(y, p)
    assert list(curves) == list(GENRES)
    precision, recall = curves["action"]
    sk_p, sk_r, _ = precision_recall_curve(y[:, 0], p[:, 0])
    np.testing.assert_allclose(precision, sk_p)
    np.testing.assert_allclose(recall, sk_r)
    assert curves["horror"][0].size == 0 and curves["horror"][1].size == 0


def test_custom_genres():
    y, p = random_case(10, n=60)
    d = multilabel_metrics(y[:, :3], p[:, :3], genres=("a", "b", "c"))
    assert list(d) == list(METRIC_NAMES) + ["a", "b", "c"]
