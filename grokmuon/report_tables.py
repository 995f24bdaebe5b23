"""What the report's sections share: the markdown of a table and of a number, Kaplan-Meier medians and
permutation log-rank tests of two groups as text, the group table, the strata a test compares within, and
the pairs of arms (which pairs a report shows, how it names them, its Holm notes).

grokmuon/report.py assembles the report from its sections (its own, report_dynamics.py's and
report_tuning.py's); each of them builds on this module, which imports none of them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .arms import PAPER, order, title
from .results import condition_axes


REFERENCE = "adamw"             # the arm every other is set against by default: the paper's baseline


def num(x, fmt: str = ".1f") -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, fmt)


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def km_median_text(g: pd.DataFrame, time: str = "time", event: str = "event") -> str:
    g = g[g[time].notna()]
    if g.empty:
        return "–"
    m = stats.km_median(g[time], g[event])
    return num(m, ".0f") if m is not None else f"> {int(g[time].max())}"


def perm_text(t: stats.PermTest) -> str:
    """A permutation p with how it was got: exact over N arrangements, or N draws ± its MC error."""
    if np.isnan(t.p):
        return "–"
    return f"{t.p:.3g} (exact, {t.draws})" if t.exact else f"{t.p:.3g} ± {t.mc_error:.1g}"


def stratum_key(g: pd.DataFrame, strata) -> pd.Series:
    """Each member's stratum as one string ("modadd/softmax/128"); a blank value is a stratum of its own
    and 128 read back as 128.0 is the same one."""
    return g[list(strata)].agg(lambda r: "/".join(map(value_text, r)), axis=1)


def shared_strata(done: pd.DataFrame, strata) -> tuple[pd.DataFrame, list[str]]:
    """The members whose stratum every arm of `done` holds, and the strata left out (sorted): what its
    arms can be set against each other on. A condition run for one arm alone (a sweep still landing)
    has nothing to be compared with; pooled with the rest it would set one arm's condition against
    another's. A table of one arm (or none) is kept whole: it is described, not compared."""
    arms = done["optimizer"].unique()
    if len(arms) < 2:
        return done, []
    key = stratum_key(done, strata)
    held = [set(key[done["optimizer"] == arm]) for arm in arms]
    shared = set.intersection(*held)
    return done[key.isin(shared)], sorted(set.union(*held) - shared)


def in_shared_strata(done: pd.DataFrame, strata, pair: tuple[str, str]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The pair's two arms' members, each cut to the strata both arms hold where both were run (each whole
    where one was not; shared_strata), and the strata left out (sorted). Every test of a pair takes its
    members from here, so a drawn permutation p is the same number wherever the same test is quoted."""
    kept, alone = shared_strata(done[done["optimizer"].isin(pair)], strata)
    return (*(kept[kept["optimizer"] == arm] for arm in pair), alone)


def perm_logrank(a: pd.DataFrame, b: pd.DataFrame, strata, time: str = "time", event: str = "event") -> stats.PermTest:
    """Permutation (exact where small) stratified log-rank p of a against b; members without a value of
    `time` (e.g. no delay because never memorised) are left out."""
    both = pd.concat([a.assign(_x=True), b.assign(_x=False)])
    both = both[both[time].notna()]
    if both.empty:
        return stats.PermTest(np.nan, np.nan, 0, False, np.nan)
    key = stratum_key(both, strata) if strata else None
    return stats.logrank_permutation(both[time], both[event], both["_x"], key)


def group_row(g: pd.DataFrame) -> list:
    """n, grokked, censored, diverged, mean ± sd, median (grokked only), Kaplan-Meier median."""
    d = stats.describe(g.loc[g["grokked"], "grokking_epoch"])
    return [len(g), int(g["grokked"].sum()), int((~g["grokked"] & ~g["diverged"]).sum()),
            int(g["diverged"].sum()), f"{num(d['mean'])} ± {num(d['sd'])}", num(d["median"]), km_median_text(g)]


def value_text(v) -> str:
    return format(v, "g") if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else str(v)


def group_table(done: pd.DataFrame, by: list[str]) -> str:
    header = [*by, "n", "grokked", "censored", "diverged", "mean ± sd", "median", "KM median"]
    rows = [[*(value_text(v) for v in (k if isinstance(k, tuple) else (k,))), *group_row(g)]
            for k, g in done.groupby(by, sort=True, dropna=False)]
    return md_table(header, rows)


STRATA = ("task", "head")


def strata_of(done: pd.DataFrame, base: tuple = STRATA) -> tuple:
    """What a test of this table compares within: the `base` columns and every condition it varies (a
    batch size or width is a condition both optimizers meet, so they are set against each other at it)."""
    return (*base, *condition_axes(done))


def within(strata: tuple) -> str:
    """The strata in words: "task and head", "task, head and batch_size"."""
    names = list(strata)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def arm_pairs(arms, reference: str = REFERENCE, extra=()) -> list[tuple[str, str]]:
    """The pairs a report shows: (reference, arm) for every other arm, in arms.order, then each extra
    (a, b) not already there either way round. A table of the reference alone is set against the paper's
    other arm (its tests say there is nothing to compare), as before arms."""
    others = [a for a in order(arms) if a != reference]
    if not others and reference in PAPER:
        others = [a for a in PAPER if a != reference]
    pairs = [(reference, a) for a in others]
    for a, b in extra:
        if (a, b) not in pairs and (b, a) not in pairs:
            pairs.append((a, b))
    return pairs


def versus(pair: tuple[str, str]) -> str:
    """A pair as a heading: "Muon vs AdamW" (the second arm first, as the paper's title)."""
    return f"{title(pair[1])} vs {title(pair[0])}"


def names(pairs) -> tuple[str, str]:
    """How the text calls a pair's two arms: by name with one pair, else A (the first) and B."""
    return (title(pairs[0][0]), title(pairs[0][1])) if len(pairs) == 1 else ("A", "B")


def pair_tables(pairs, tables: list[str]) -> str:
    """One table per pair: alone as it is, several each under its pair's name."""
    if len(pairs) == 1:
        return tables[0]
    return "\n".join(f"\n### {versus(pair)}\n\n{t}" for pair, t in zip(pairs, tables))


def primary_text(p_adj: float, pairs) -> str:
    """The Holm cell of a primary test: "primary", or with several pairs "primary: " and its p adjusted
    over the pairs' primary tests (one family of its own)."""
    return "primary" if len(pairs) == 1 else f"primary: {num(p_adj, '.3g')}"


def primaries_note(pairs, primary_ps) -> str:
    """The primary tests' family: the pairs' primary p (NaN where a pair has no test: an arm not yet run, or
    no stratum holding both), counted as Holm counts them."""
    k = tested(primary_ps)
    if len(pairs) == 1:
        return ""
    if k == 0:
        return f" With {len(pairs)} pairs, no pair has a primary test yet (no stratum holds both its arms)."
    return (f" With {len(pairs)} pairs, each pair's primary test is one of a family of {k}: its Holm p "
            "over them is beside the word *primary*.")


def run_hours(g: pd.DataFrame) -> float | None:
    """Wall-clock hours of the run folders the rows come from, each folder once (its members train together:
    a folder's wall_s is what one waited for all of them); None where the rows name no folder or no folder
    recorded its time."""
    if "run_dir" not in g or "wall_s" not in g:
        return None
    wall = pd.to_numeric(g.drop_duplicates("run_dir")["wall_s"], errors="coerce")
    return None if wall.isna().all() else float(wall.fillna(0).sum()) / 3600


def tested(ps) -> int:
    """How many of the p values are tests (NaN: none could be run), as Holm counts them."""
    return int(np.sum(~np.isnan(np.asarray(ps, dtype=float))))


def n_tests(ps) -> str:
    """tested(ps) in words: "1 test", "2 tests"."""
    k = tested(ps)
    return f"{k} test{'' if k == 1 else 's'}"


def holm_note(family: str) -> str:
    """How a table's Holm column reads: which tests form its family, and that the primary test is apart."""
    return (f"*Holm p*: the permutation p adjusted by Holm's step-down over one family, {family}: the "
            "sorted p times the number of tests left, running maximum, at most 1, so that “Holm p < 0.05” "
            "anywhere in it keeps a family-wise error of 0.05. The unadjusted p is beside it.")


def plateaus(g: pd.DataFrame) -> int | None:
    """How many members are flagged as stuck on a plateau (None: a table collected before the flag)."""
    return int(g["plateau"].fillna(False).astype(bool).sum()) if "plateau" in g else None


def tests_heading(pairs) -> str:
    """The heading of the section of primary tests: "Muon vs AdamW", or "Each arm against AdamW"."""
    return versus(pairs[0]) if len(pairs) == 1 else f"Each arm against {title(pairs[0][0])}"


def span(x: pd.Series, fmt: str = ".2f") -> str:
    """The values as "low–high" ("0.66–0.94"), or the one value where they agree to the format."""
    lo, hi = format(x.min(), fmt), format(x.max(), fmt)
    return lo if lo == hi else f"{lo}–{hi}"
