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


def km_band(time, event, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise confidence band of the Kaplan-Meier fraction grokked (scipy's Greenwood, "linear"):
    epochs t, low, high, as km_curve's steps."""
    if len(time) == 0:
        return np.array([]), np.array([]), np.array([])
    cdf = stats.ecdf(censored(time, event)).cdf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # no variance where nobody is at risk: NaN, drawn as a gap
        ci = cdf.confidence_interval(level)
    return cdf.quantiles, ci.low.probabilities, ci.high.probabilities


def km_median(time, event) -> float | None:
    """First epoch by which half the runs have grokked (Kaplan-Meier); None if never within the data."""
    t, frac = km_curve(time, event)
    reached = np.nonzero(frac >= 0.5 - 1e-12)[0]
    return float(t[reached[0]]) if len(reached) else None


def km_median_ci(time, event, level: float = 0.95) -> tuple[float | None, float | None]:
    """Confidence interval of the Kaplan-Meier median, read off km_band where it crosses one half (the
    band's inversion, as Brookmeyer-Crowley): low = first epoch whose upper band reaches 1/2, high = first
    epoch whose lower band does; None where the band never gets there (high None: the data cannot rule
    out a median beyond the last epoch)."""
    t, low, high = km_band(time, event, level)

    def first(frac):
        reached = np.nonzero(np.nan_to_num(frac, nan=-1.0) >= 0.5 - 1e-12)[0]
        return float(t[reached[0]]) if len(reached) else None
    return first(high), first(low)


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


@dataclass(frozen=True)
class PermTest:
    """A permutation test: the observed statistic, its two-sided p, how many label arrangements it
    counted, whether that was all of them (exact), and the Monte Carlo standard error of p (0 if exact)."""
    statistic: float
    p: float
    draws: int
    exact: bool
    mc_error: float


def _logrank_parts(time, event, strata):
    """Per stratum, what the log-rank statistic needs besides the labels: the at-risk and event
    indicator matrices [distinct event times, members] and the counts n, d at each event time."""
    time, event = _arr(time), np.asarray(event, dtype=bool)
    strata = np.asarray(strata, dtype=object)
    parts = []
    for s in dict.fromkeys(strata):            # first-seen order: reproducible draws
        idx = np.nonzero(strata == s)[0]
        t, e = time[idx], event[idx]
        when = np.unique(t[e])
        if not len(when):
            continue
        at_risk = (t[None, :] >= when[:, None]).astype(float)       # [K, n_k]
        died = ((t[None, :] == when[:, None]) & e[None, :]).astype(float)
        parts.append((idx, at_risk, died, at_risk.sum(1), died.sum(1)))
    return parts


def _logrank_sums(parts, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratified log-rank sums for each row of labels [N, members] (True: group x), vectorised: the
    same observed-minus-expected and variance as logrank_stratified, all arrangements at once."""
    o_minus_e = np.zeros(len(labels))
    var = np.zeros(len(labels))
    for idx, at_risk, died, n, d in parts:
        x = labels[:, idx].astype(float)
        nx, dx = x @ at_risk.T, x @ died.T                            # [N, K]
        o_minus_e += (dx - d * nx / n).sum(1)
        frac = nx / n
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where(n > 1, d * frac * (1 - frac) * (n - d) / np.maximum(n - 1, 1), 0.0)
        var += v.sum(1)
    return o_minus_e, var


def _logrank_stat(parts, labels: np.ndarray, statistic: str) -> np.ndarray:
    """z (o_minus_e / sqrt(var); 0 where an arrangement has no variance) or the raw o_minus_e."""
    o_minus_e, var = _logrank_sums(parts, labels)
    if statistic == "o_minus_e":
        return o_minus_e
    return o_minus_e / np.sqrt(np.where(var > 0, var, 1.0)) * (var > 0)


def _arrangements(group: np.ndarray, strata: np.ndarray) -> int:
    from math import comb
    total = 1
    for s in dict.fromkeys(strata):
        k = strata == s
        total *= comb(int(k.sum()), int(group[k].sum()))
    return total


def _all_labels(group: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Every arrangement of the labels that keeps each stratum's count of group x: [N, members]."""
    from itertools import combinations, product
    per = []
    for s in dict.fromkeys(strata):
        idx = np.nonzero(strata == s)[0]
        per.append([(idx, set(c)) for c in combinations(range(len(idx)), int(group[idx].sum()))])
    out = np.zeros((_arrangements(group, strata), len(group)), dtype=bool)
    for row, choice in enumerate(product(*per)):
        for idx, chosen in choice:
            out[row, idx[list(chosen)]] = True
    return out


def logrank_permutation(time, event, group, strata=None, draws: int = 20_000, seed: int = 0,
                        statistic: str = "z") -> PermTest:
    """Permutation p (two-sided) of the (stratified) log-rank test of group x (group True) against the
    rest: the labels are shuffled within each stratum, and p is the share of arrangements whose |statistic|
    is at least the observed one. Exact, over every arrangement, when there are at most `draws` of them
    (3 vs 3 has 20, 5 vs 5 has 252); else `draws` random ones from a seeded generator, p = (hits + 1) /
    (draws + 1), with Monte Carlo error sqrt(p (1 - p) / draws). statistic: "z" (the standardised
    stratified z, as logrank_stratified) or "o_minus_e" (the raw sum of observed minus expected events
    of group x); on small strata they can give different p's. No normal approximation anywhere."""
    group = np.asarray(group, dtype=bool)
    strata = np.asarray(strata if strata is not None else np.zeros(len(group)), dtype=object)
    parts = _logrank_parts(time, event, strata)
    # No test where no stratum holds both groups with an event among them (the observed variance is 0).
    if not parts or _logrank_sums(parts, group[None, :])[1][0] <= 0:
        return PermTest(np.nan, np.nan, 0, False, np.nan)
    observed = float(_logrank_stat(parts, group[None, :], statistic)[0])
    total = _arrangements(group, strata)
    tol = 1e-9 * max(1.0, abs(observed))              # equal statistics must count as "at least as extreme"
    if total <= draws:
        values = _logrank_stat(parts, _all_labels(group, strata), statistic)
        p = float(np.mean(np.abs(values) >= abs(observed) - tol))
        return PermTest(observed, p, total, True, 0.0)
    rng = np.random.default_rng(seed)
    labels = np.empty((draws, len(group)), dtype=bool)
    for s in dict.fromkeys(strata):
        idx = np.nonzero(strata == s)[0]
        labels[:, idx] = rng.permuted(np.broadcast_to(group[idx], (draws, len(idx))), axis=1)
    hits = int(np.sum(np.abs(_logrank_stat(parts, labels, statistic)) >= abs(observed) - tol))
    p = (hits + 1) / (draws + 1)
    return PermTest(observed, p, draws, False, float(np.sqrt(p * (1 - p) / draws)))


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the order given: the family-wise error of "p_adj < alpha"
    stays at alpha over the whole family. Sort the k p-values ascending, multiply the i-th smallest
    (i = 0, 1, ...) by k - i, take the running maximum (an adjusted p never falls below a smaller one's),
    cap at 1. A NaN (no test) is no member of the family: it stays NaN and does not count in k."""
    p = _arr(p)
    out = np.full(len(p), np.nan)
    tested = np.nonzero(~np.isnan(p))[0]
    order = tested[np.argsort(p[tested], kind="stable")]
    k = len(order)
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (k - i) * p[j]))
        out[j] = running
    return out
