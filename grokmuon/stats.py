"""Statistics for grokking epochs: small pure functions on arrays, each a thin, named use of scipy.

Two kinds of question, kept apart:
- Among runs that grokked, is the grokking epoch smaller under Muon? (Welch t, as the paper; Mann-Whitney
  U, which does not assume normal epochs; a bootstrap CI of the difference of means.) These ignore the
  runs that never grokked, so a method that fails more often can look faster.
- Counting every run, does Muon grok sooner? Survival analysis: a run that did not grok by its budget is
  right-censored there. Kaplan-Meier gives the fraction grokked by each epoch and its median; the
  log-rank test compares two optimizers' curves.
Every function returns NaN (or None) rather than raising when a group is too small to say anything.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

# The paper's numbers (section 3, Fig. 5 and text): mean grokking epochs and its two-sample t-test.
PAPER = {"adamw_mean": 153.09, "muon_mean": 102.89, "t": 5.0175, "p": 6.33e-08}


@dataclass(frozen=True)
class Test:
    statistic: float
    p: float
    df: float = float("nan")


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def describe(x) -> dict:
    """n, mean, sd (n-1), median of the values (NaN where undefined)."""
    x = _arr(x)
    return {"n": len(x), "mean": x.mean() if len(x) else np.nan,
            "sd": x.std(ddof=1) if len(x) > 1 else np.nan, "median": np.median(x) if len(x) else np.nan}


def welch_t(x, y) -> Test:
    """Two-sample t-test without equal variances (Welch), two-sided; t > 0 when mean(x) > mean(y)."""
    x, y = _arr(x), _arr(y)
    if len(x) < 2 or len(y) < 2:
        return Test(np.nan, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # zero variance in both: NaN, said in the table
        r = stats.ttest_ind(x, y, equal_var=False)
    return Test(float(r.statistic), float(r.pvalue), float(r.df))


def mann_whitney(x, y) -> Test:
    """Mann-Whitney U (two-sided): do values of x tend to be larger than those of y? U is x's."""
    x, y = _arr(x), _arr(y)
    if len(x) < 1 or len(y) < 1:
        return Test(np.nan, np.nan)
    r = stats.mannwhitneyu(x, y, alternative="two-sided")
    return Test(float(r.statistic), float(r.pvalue))


def bootstrap_mean_diff(x, y, n_resamples: int = 10_000, level: float = 0.95, seed: int = 0) -> tuple:
    """(mean(x) - mean(y), low, high): a percentile bootstrap CI, each sample resampled on its own.
    Seeded, so a report is reproducible to the digit."""
    x, y = _arr(x), _arr(y)
    if len(x) < 2 or len(y) < 2:
        return (x.mean() - y.mean() if len(x) and len(y) else np.nan), np.nan, np.nan
    r = stats.bootstrap((x, y), lambda a, b, axis: a.mean(axis) - b.mean(axis), n_resamples=n_resamples,
                        confidence_level=level, method="percentile", vectorized=True, rng=seed)
    return x.mean() - y.mean(), float(r.confidence_interval.low), float(r.confidence_interval.high)


def censored(time, event) -> stats.CensoredData:
    """Survival data: time is the grokking epoch where event (grokked) is true, else the censoring epoch."""
    time, event = _arr(time), np.asarray(event, dtype=bool)
    return stats.CensoredData(uncensored=time[event], right=time[~event])


def km_curve(time, event) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier fraction grokked: epochs t and 1 - S(t) at each (a step function, right-continuous)."""
    if len(time) == 0:
        return np.array([]), np.array([])
    cdf = stats.ecdf(censored(time, event)).cdf
    return cdf.quantiles, cdf.probabilities


def km_median(time, event) -> float | None:
    """First epoch by which half the runs have grokked (Kaplan-Meier); None if never within the data."""
    t, frac = km_curve(time, event)
    reached = np.nonzero(frac >= 0.5 - 1e-12)[0]
    return float(t[reached[0]]) if len(reached) else None


def logrank(time_x, event_x, time_y, event_y) -> Test:
    """Log-rank test (two-sided) of equal grokking-time distributions, censoring included.
    statistic > 0 when x groks sooner than it would if both curves were equal (scipy's sign)."""
    if len(time_x) == 0 or len(time_y) == 0 or not (np.any(event_x) or np.any(event_y)):
        return Test(np.nan, np.nan)
    r = stats.logrank(censored(time_x, event_x), censored(time_y, event_y))
    return Test(float(r.statistic), float(r.pvalue))


def logrank_stratified(time_x, event_x, strata_x, time_y, event_y, strata_y) -> Test:
    """Stratified log-rank test (two-sided): x against y within each stratum (e.g. a task and head), the
    observed-minus-expected events and their variances summed over strata before z is formed. Pooled
    curves mix tasks of different difficulty; this compares like with like and weighs each stratum by
    its events. Same sign as logrank(). scipy has only the unstratified test; with one stratum this
    gives its z exactly (tested)."""
    t = np.r_[_arr(time_x), _arr(time_y)]
    e = np.r_[np.asarray(event_x, dtype=bool), np.asarray(event_y, dtype=bool)]
    in_x = np.r_[np.ones(len(time_x), bool), np.zeros(len(time_y), bool)]
    strata = np.r_[np.asarray(strata_x, dtype=object), np.asarray(strata_y, dtype=object)]
    o_minus_e = var = 0.0
    for s in set(strata):
        k = strata == s
        tk, ek, xk = t[k], e[k], in_x[k]
        for when in np.unique(tk[ek]):
            at_risk = tk >= when                      # a run censored at `when` is still at risk then
            n, nx = at_risk.sum(), (at_risk & xk).sum()
            died = ek & (tk == when)
            d, dx = died.sum(), (died & xk).sum()
            o_minus_e += dx - d * nx / n
            if n > 1:
                var += d * (nx / n) * (1 - nx / n) * (n - d) / (n - 1)
    if var <= 0:
        return Test(np.nan, np.nan)
    z = o_minus_e / np.sqrt(var)
    return Test(float(z), float(2 * stats.norm.sf(abs(z))))


def p_from_t(t: float, df: float | None = None) -> float:
    """Two-sided p-value of a t statistic (normal when df is None: the smallest p any df gives)."""
    dist = stats.norm if df is None else stats.t(df)
    return float(2 * dist.sf(abs(t)))


def t_for_p(p: float, df: float | None = None) -> float:
    """The |t| whose two-sided p-value is p."""
    dist = stats.norm if df is None else stats.t(df)
    return float(dist.isf(p / 2))
