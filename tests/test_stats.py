"""grokmuon.stats against hand-computed values and plain-loop references."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from grokmuon import stats


def test_welch_t_matches_the_formula():
    x, y = np.array([153.0, 120, 180, 160, 141]), np.array([100.0, 90, 130, 95])
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    t = (x.mean() - y.mean()) / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1))
    r = stats.welch_t(x, y)
    assert r.statistic == pytest.approx(t)
    assert r.df == pytest.approx(df)
    assert r.p == pytest.approx(2 * sps.t(df).sf(abs(t)))
    assert stats.welch_t(y, x).statistic == pytest.approx(-t)      # sign: x minus y


def test_welch_t_too_few_values_is_nan():
    assert math.isnan(stats.welch_t([1.0], [2.0, 3.0]).p)
    assert math.isnan(stats.welch_t([], []).statistic)


def test_mann_whitney_by_hand():
    r = stats.mann_whitney([1, 2], [3, 4])       # x below y everywhere: U = 0
    assert r.statistic == 0
    assert r.p == pytest.approx(2 / 6)           # exact: 1 of 6 orderings is as extreme, two-sided
    assert stats.mann_whitney([3, 4], [1, 2]).statistic == 4


def test_bootstrap_is_seeded_and_brackets_the_difference():
    rng = np.random.default_rng(1)
    x, y = rng.normal(150, 30, 40), rng.normal(100, 30, 40)
    d, lo, hi = stats.bootstrap_mean_diff(x, y, seed=3)
    assert d == pytest.approx(x.mean() - y.mean())
    assert lo < d < hi and lo > 0                 # a 50-epoch shift with n=40: clearly above 0
    assert stats.bootstrap_mean_diff(x, y, seed=3) == (d, lo, hi)
    se = math.sqrt(x.var(ddof=1) / 40 + y.var(ddof=1) / 40)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)    # about the normal-theory width
    assert all(math.isnan(v) for v in stats.bootstrap_mean_diff([1.0], [2.0])[1:])


def test_kaplan_meier_by_hand():
    # 6 members; 4 grok at 1, 3, 5, 7; 2 are censored at 10.
    t, f = stats.km_curve([1, 3, 5, 7, 10, 10], [1, 1, 1, 1, 0, 0])
    assert list(t[:4]) == [1, 3, 5, 7]
    assert f[:4] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6])
    assert stats.km_median([1, 3, 5, 7, 10, 10], [1, 1, 1, 1, 0, 0]) == 5
    # censoring in the middle: S = 3/4 after 2, then 3/4 * 1/2 after 4 (2 at risk), 0 after 5
    t, f = stats.km_curve([2, 3, 4, 5], [1, 0, 1, 1])
    assert dict(zip(t, f))[4] == pytest.approx(1 - 3 / 8)
    assert stats.km_median([2, 3, 4, 5], [1, 0, 1, 1]) == 4


def test_kaplan_meier_median_not_reached():
    assert stats.km_median([10, 10, 10], [0, 0, 0]) is None
    assert stats.km_median([3, 10, 10], [1, 0, 0]) is None


def logrank_reference(tx, ex, ty, ey) -> float:
    """The log-rank z written out: at each event time, observed minus expected events of x."""
    t, e = np.r_[tx, ty], np.r_[ex, ey].astype(bool)
    in_x = np.r_[np.ones(len(tx), bool), np.zeros(len(ty), bool)]
    o_minus_e = var = 0.0
    for s in np.unique(t[e]):
        at_risk = t >= s
        n, nx = at_risk.sum(), (at_risk & in_x).sum()
        d, dx = (e & (t == s)).sum(), (e & (t == s) & in_x).sum()
        o_minus_e += dx - d * nx / n
        var += d * (nx / n) * (1 - nx / n) * (n - d) / (n - 1) if n > 1 else 0
    return o_minus_e / math.sqrt(var)


def test_logrank_matches_the_reference():
    rng = np.random.default_rng(0)
    tx, ty = rng.integers(5, 100, 25).astype(float), rng.integers(20, 150, 30).astype(float)
    ex, ey = tx < 90, ty < 120
    tx[~ex], ty[~ey] = 90, 120                      # censored at their budgets
    r = stats.logrank(tx, ex, ty, ey)
    z = logrank_reference(tx, ex, ty, ey)
    assert r.statistic == pytest.approx(z)
    assert r.p == pytest.approx(2 * sps.norm.sf(abs(z)))
    assert r.statistic > 0                          # x groks sooner: positive (scipy's sign)


def test_stratified_logrank_with_one_stratum_is_the_plain_one():
    rng = np.random.default_rng(1)
    tx, ty = rng.integers(5, 100, 20).astype(float), rng.integers(20, 150, 15).astype(float)
    ex, ey = tx < 80, ty < 120
    tx[~ex], ty[~ey] = 80, 120
    plain = stats.logrank(tx, ex, ty, ey)
    strat = stats.logrank_stratified(tx, ex, ["a"] * 20, ty, ey, ["a"] * 15)
    assert strat.statistic == pytest.approx(plain.statistic)
    assert strat.p == pytest.approx(plain.p)


def test_stratified_logrank_compares_within_strata():
    # Task "easy" groks early for everyone, task "hard" late; x has more easy runs. Pooled, x looks much
    # faster; within each task, x and y are identical, so the stratified test sees no difference at all.
    easy, hard = [10, 11, 12, 13], [100, 101, 102, 103]
    tx, sx = easy * 3 + hard, ["easy"] * 12 + ["hard"] * 4
    ty, sy = easy + hard * 3, ["easy"] * 4 + ["hard"] * 12
    ex, ey = [1] * 16, [1] * 16
    assert stats.logrank(tx, ex, ty, ey).p < 0.05
    strat = stats.logrank_stratified(tx, ex, sx, ty, ey, sy)
    assert strat.statistic == pytest.approx(0.0, abs=1e-12)
    assert strat.p == pytest.approx(1.0)
    # And it sums over strata: two strata that each favour x give a larger |z| than either alone.
    one = stats.logrank_stratified([1, 2], [1, 1], ["a", "a"], [3, 4], [1, 1], ["a", "a"])
    two = stats.logrank_stratified([1, 2, 1, 2], [1] * 4, list("aabb"), [3, 4, 3, 4], [1] * 4, list("aabb"))
    assert two.statistic > one.statistic > 0
    assert two.statistic == pytest.approx(one.statistic * math.sqrt(2))


def test_a_stratum_with_one_optimizer_only_changes_nothing():
    tx, ex, ty, ey = [3, 5, 8, 9], [1, 1, 1, 0], [4, 7, 9, 9], [1, 1, 0, 0]
    base = stats.logrank_stratified(tx, ex, ["a"] * 4, ty, ey, ["a"] * 4)
    more = stats.logrank_stratified(tx + [1, 2], ex + [1, 1], ["a"] * 4 + ["x only"] * 2, ty, ey, ["a"] * 4)
    assert more.statistic == pytest.approx(base.statistic) and more.p == pytest.approx(base.p)


def test_logrank_without_any_event_is_nan():
    assert math.isnan(stats.logrank_stratified([5], [0], ["a"], [5], [0], ["a"]).p)
    assert math.isnan(stats.logrank([5, 5], [0, 0], [5], [0]).p)


def test_the_papers_p_does_not_follow_from_its_t():
    assert stats.p_from_t(stats.PAPER["t"]) == pytest.approx(5.23e-7, rel=0.01)
    assert stats.p_from_t(stats.PAPER["t"], df=1000) == pytest.approx(6.19e-7, rel=0.01)
    assert stats.t_for_p(stats.PAPER["p"]) == pytest.approx(5.41, abs=0.01)
    assert stats.p_from_t(1.959964) == pytest.approx(0.05, rel=1e-4)
    assert stats.t_for_p(stats.p_from_t(2.5, 12), 12) == pytest.approx(2.5)


def test_describe():
    d = stats.describe([1, 2, 3, 10])
    assert (d["n"], d["mean"], d["median"]) == (4, 4, 2.5)
    assert d["sd"] == pytest.approx(np.std([1, 2, 3, 10], ddof=1))
    assert math.isnan(stats.describe([]).get("mean"))


def test_holm_by_hand():
    # k = 3, sorted 0.01, 0.02, 0.04: 3 x 0.01 = 0.03, 2 x 0.02 = 0.04, 1 x 0.04 = 0.04; back in input order.
    assert stats.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # The running maximum: 4 x 0.01 = 0.04, 3 x 0.011 = 0.033 -> 0.04 (never below a smaller p's).
    assert stats.holm([0.011, 0.01, 0.5, 0.3]) == pytest.approx([0.04, 0.04, 0.6, 0.6])
    assert stats.holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])           # capped at 1
    assert stats.holm([0.0123]) == pytest.approx([0.0123])               # a family of one: unchanged


def test_holm_the_issue_numbers():
    # 7 tuned tasks at the 5-vs-5 exact minimum 2/252 can adjust no lower than 7 x 0.0079 = 0.056;
    # 19 default cells no lower than 19 x 0.0079 = 0.15.
    assert stats.holm([2 / 252] * 2 + [0.5] * 5).min() == pytest.approx(7 * 2 / 252)
    assert stats.holm([2 / 252] * 19).min() == pytest.approx(19 * 2 / 252)


def test_holm_nan_is_not_a_member_of_the_family():
    out = stats.holm([0.01, float("nan"), 0.02])
    assert math.isnan(out[1])
    assert out[[0, 2]] == pytest.approx([0.02, 0.02])                    # k = 2, not 3
    assert stats.holm([]).shape == (0,)


def _holm_statsmodels_style(p):
    """statsmodels' multipletests(method="holm") as written there: sort, cumulative max of
    (k - i) p_(i), clip at 1, unsort."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    k = len(p)
    adjusted = np.maximum.accumulate((k - np.arange(k)) * p[order]).clip(max=1)
    out = np.empty(k)
    out[order] = adjusted
    return out


def test_holm_matches_the_statsmodels_definition_on_random_families():
    rng = np.random.default_rng(0)
    for k in (2, 5, 17, 40):
        p = rng.uniform(0, 0.2, k) ** 2
        assert stats.holm(p) == pytest.approx(_holm_statsmodels_style(p))
        # Holm rejects at 0.05 exactly what the step-down procedure rejects, step by step.
        order = np.argsort(p)
        rejected = set()
        for i, j in enumerate(order):
            if p[j] > 0.05 / (k - i):
                break
            rejected.add(j)
        assert set(np.nonzero(stats.holm(p) <= 0.05)[0]) == rejected
