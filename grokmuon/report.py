"""The results table -> a markdown report: grokking epochs per group, each arm against a reference arm (and
any pairs named), the paper beside us.

An arm (grokmuon/arms.py) is an optimizer with its non-default keys; the report's tables group by it in
their `optimizer` column. A pair (a, b) sets arm b against arm a: a is the first group of every test (the
paper's t is AdamW minus Muon), so z < 0 means b groks sooner. Each section's Holm family spans every pair
it shows; with one pair (AdamW, Muon: the paper's study) the report is what it was before arms.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import metrics, racing, stats
from .arms import PAPER, order, title
from .phases import PHASES
from .results import (CONDITIONS, SCANNED, SPECTRUM, TableError, best_setting, by_arm, condition_axes, finished,
                      judged, scanned_axes, varying_axes)

REFERENCE = "adamw"             # the arm every other is set against by default: the paper's baseline
IDENTITY = ("task", "optimizer", "head", "seed")

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


def primaries_note(pairs) -> str:
    return "" if len(pairs) == 1 else (
        f" With {len(pairs)} pairs, each pair's primary test is one of a family of {len(pairs)}: its Holm p "
        "over them is beside the word *primary*.")


def compare(done: pd.DataFrame, strata: tuple = STRATA, pair: tuple[str, str] = PAPER) -> dict:
    """One pair of arms (a, b; default AdamW vs Muon) on one group: the tests of stats.py, keyed by name.
    The stratified log-rank compares within each combination of the `strata` columns (those the group
    still pools over)."""
    a, b = (done[done["optimizer"] == arm] for arm in pair)
    key = lambda g: list(stratum_key(g, strata)) if len(g) else []
    ga, gb = a.loc[a["grokked"], "grokking_epoch"].astype(float), b.loc[b["grokked"], "grokking_epoch"].astype(float)
    diff, lo, hi = stats.bootstrap_mean_diff(ga, gb)
    return {"n": (len(a), len(b)), "grokked": (len(ga), len(gb)), "means": (ga.mean(), gb.mean()),
            "diff": (diff, lo, hi), "welch": stats.welch_t(ga, gb), "mwu": stats.mann_whitney(ga, gb),
            "km": (km_median_text(a) if len(a) else "–", km_median_text(b) if len(b) else "–"),
            "logrank": stats.logrank(a["time"], a["event"], b["time"], b["event"]),
            "stratified": stats.logrank_stratified(a["time"], a["event"], key(a), b["time"], b["event"], key(b)),
            "perm": perm_logrank(a, b, strata)}


def tests_table(done: pd.DataFrame, pairs=(PAPER,)) -> str:
    conds = condition_axes(done)
    groups = [("all", done, (*STRATA, *conds))] + \
             [(f"task={k}", g, ("head", *conds)) for k, g in done.groupby("task")] + \
             [(f"head={k}", g, ("task", *conds)) for k, g in done.groupby("head")] + \
             [(f"{c}={value_text(v)}", g, (*STRATA, *(x for x in conds if x != c)))
              for c in conds for v, g in done.groupby(c, dropna=False)]
    # The family: every row but "all" (the primary test) and rows that hold every member again (a head
    # when the table has one head only): those are the primary test once more, not a subgroup. Every
    # pair's subgroups are one family; the pairs' primary tests another.
    again = [len(g) == len(done) for _, g, _ in groups]
    tables, perms = [], []
    for pair in pairs:
        rows = []
        for name, g, strata in groups:
            c = compare(g, strata, pair)
            perms.append(c["perm"].p)
            rows.append(test_row(name, c))
        tables.append(rows)
    perms = np.reshape(perms, (len(pairs), len(groups)))
    primary = iter(stats.holm(perms[:, 0]))
    adjusted = iter(stats.holm([p for ps in perms for p, same in zip(ps[1:], again[1:]) if not same]))
    for rows in tables:
        for row, same in zip(rows, again):
            row[6] = primary_text(next(primary), pairs) if row is rows[0] else "= all" if same else \
                num(next(adjusted), ".3g")
    header = lambda a, b: ["group", f"n {a}/{b}", "grokked", f"KM median {a}/{b}", "stratified z", "permutation p",
                           "Holm p", "normal p", "log-rank z", "p", f"mean {a} − {b} [95% CI]", "Welch t", "p",
                           "Mann–Whitney U", "p"]
    return pair_tables(pairs, [md_table(header(title(a), title(b)), rows) for (a, b), rows in zip(pairs, tables)])


def test_row(name: str, c: dict) -> list:
    """A row of the test table from compare()'s tests (its Holm cell, index 6, filled in after)."""
    d, w, u, lr, st = c["diff"], c["welch"], c["mwu"], c["logrank"], c["stratified"]
    return [name, "{}/{}".format(*c["n"]), "{}/{}".format(*c["grokked"]), "{}/{}".format(*c["km"]),
            num(st.statistic, ".3f"), perm_text(c["perm"]), None, num(st.p, ".3g"),
            num(lr.statistic, ".3f"), num(lr.p, ".3g"),
            f"{num(d[0])} [{num(d[1])}, {num(d[2])}]", num(w.statistic, ".3f"), num(w.p, ".3g"),
            num(u.statistic, ".0f"), num(u.p, ".3g")]


def holm_note(family: str) -> str:
    """How a table's Holm column reads: which tests form its family, and that the primary test is apart."""
    return (f"*Holm p*: the permutation p adjusted by Holm's step-down over one family, {family}: the "
            "sorted p times the number of tests left, running maximum, at most 1, so that “Holm p < 0.05” "
            "anywhere in it keeps a family-wise error of 0.05. The unadjusted p is beside it.")


def cell_verdict(z: float, p: float, alpha: float = 0.05, pair: tuple[str, str] = PAPER) -> str:
    """Which arm of the pair groks sooner in one cell, only where its p (the Holm-adjusted one) says so
    (z < 0: the second)."""
    if np.isnan(p) or p >= alpha:
        return f"neither (Holm p {num(p, '.2g')})" if not np.isnan(p) else "–"
    return title(pair[1]) if z < 0 else title(pair[0])


def plateaus(g: pd.DataFrame) -> int | None:
    """How many members are flagged as stuck on a plateau (None: a table collected before the flag)."""
    return int(g["plateau"].fillna(False).astype(bool).sum()) if "plateau" in g else None


def outcome_text(g: pd.DataFrame) -> str:
    """One optimizer in one cell: grokked of n, its Kaplan-Meier median, and its plateaus where any."""
    plateau = plateaus(g)
    return f"{int(g['grokked'].sum())}/{len(g)}, {km_median_text(g)}" + (f", {plateau} plateau" if plateau else "")


def versus_section(done: pd.DataFrame, pairs=(PAPER,)) -> str:
    """Task x head (x each condition the table varies): each optimizer's grokked count, Kaplan-Meier median
    and plateaus, the cell's own log-rank permutation p (exact where small) and which is sooner where that
    p is below 0.05. Only with more than one head (what the heads change) or with conditions (whether the
    ordering survives them)."""
    conds = condition_axes(done)
    if done["head"].nunique() < 2 and not conds:
        return ""
    by, tables, tests = ["task", "head", *conds], [], []
    for pair in pairs:
        rows = []
        for key, g in done.groupby(by, sort=True, dropna=False):
            a, b = (g[g["optimizer"] == arm] for arm in pair)
            if a.empty or b.empty:
                continue
            t = perm_logrank(a, b, ())
            tests.append((t, pair))
            rows.append([*(value_text(v) for v in key), outcome_text(a), outcome_text(b), num(t.statistic, ".2f"),
                         perm_text(t)])
        tables.append(rows)
    adjusted = iter(zip(tests, stats.holm([t.p for t, _ in tests])))
    for rows in tables:
        for row in rows:
            (t, pair), p_adj = next(adjusted)
            row += [num(p_adj, ".3g"), cell_verdict(t.statistic, p_adj, pair=pair)]
    first, second = names(pairs)
    return "\n".join([
        f"\n## By {'condition' if conds else 'head'}, per task\n",
        f"Each cell alone: {first} against {second} on the log-rank (censoring included), its permutation p exact "
        "over every arrangement up to 20,000 of them, else drawn (3 against 3 cannot go below 0.1, 5 against "
        "5 below 0.008)" + ("; a cell pools its scanned values (see *By scanned value*)" if scanned_axes(done)
                            else "") + ". "
        + holm_note(f"every cell of {'this table' if len(pairs) == 1 else 'these tables'} with a test "
                    f"({sum(not np.isnan(t.p) for t, _ in tests)})")
        + " *sooner* names an optimizer only where its Holm p < 0.05. These cells are descriptive; the "
        f"pre-declared test is the stratified one (*{tests_heading(pairs)}*). *plateau*: members stuck below the "
        "memorisation threshold (see *Learning speed and grokking delay*). Cells with one optimizer only are left out.\n",
        pair_tables(pairs, [md_table([*by, f"{title(a)}: grokked, KM median", f"{title(b)}: grokked, KM median",
                                      "log-rank z", "permutation p", "Holm p", "sooner"], rows)
                            for (a, b), rows in zip(pairs, tables)])])


def tests_heading(pairs) -> str:
    """The heading of the section of primary tests: "Muon vs AdamW", or "Each arm against AdamW"."""
    return versus(pairs[0]) if len(pairs) == 1 else f"Each arm against {title(pairs[0][0])}"


def held_section(done: pd.DataFrame) -> str:
    """Whether grokking held: per task and optimizer, the grokked members' epochs past their grokking epoch
    (metrics.after_grokking), how many regressed, the median share of those epochs below the threshold
    and the lowest val accuracy after it. Only where some member ran past its grokking epoch."""
    if "post_grok_epochs" not in done or not done["post_grok_epochs"].notna().any():
        return ""
    rows = []
    for (task, opt), g in done[done["grokked"]].groupby(["task", "optimizer"]):
        g = g[g["post_grok_epochs"].notna()]
        if g.empty:
            continue
        rows.append([task, opt, len(g), int(g["post_grok_epochs"].astype(float).median()),
                     f"{int(g['regressed'].astype(bool).sum())}/{len(g)}",
                     num(g["post_grok_below"].astype(float).median(), ".3f"),
                     num(g["post_grok_min_val"].astype(float).min(), ".3f")])
    if not rows:
        return ""
    return "\n".join([
        "\n## Whether grokking held\n",
        "Over each grokked member's epochs past its grokking epoch (as many as it ran: `patience` gives each "
        f"at least that many): *regressed* when val accuracy stayed below the threshold {metrics.REGRESS_RUN} "
        "epochs in a row or more; the share of those epochs below the threshold (median over members) and the "
        "lowest val accuracy after grokking (over all members). Runs that stop soon after grokking "
        "(patience 0-10) say little here.\n",
        md_table(["task", "optimizer", "grokked members", "epochs after (median)", "regressed",
                  "share below (median)", "lowest val acc"], rows)])


def phases_section(done: pd.DataFrame, pairs=(PAPER,)) -> str:
    """The phases of grokking from the Fourier probes (phases.py), per task and arm, and each pair on each
    phase epoch. Only where some member has one (a run trained with the Fourier probes)."""
    if not all(c in done for c in PHASES) or not done[list(PHASES)].notna().any().any():
        return ""
    # A member without a phase epoch (its curve never moved that far) is censored at its last epoch.
    timed = done.assign(**{f"{c}_time": done[c].astype(float).fillna(done["epochs_run"].astype(float))
                           for c in PHASES}, **{f"{c}_event": done[c].notna() for c in PHASES})
    timed = timed[timed["task"].isin(timed.loc[timed[list(PHASES)].notna().any(axis=1), "task"])]
    rows = []
    for (task, opt), g in timed.groupby(["task", "optimizer"]):
        lead = (g["grokking_epoch"].astype(float) - g["restricted_drop_epoch"].astype(float)).dropna()
        ranks = [pd.to_numeric(g[c], errors="coerce").median() if c in g else None for c in SPECTRUM]
        rows.append([task, opt, len(g), km_median_text(g, "mem_time", "mem_event"),
                     *(f"{km_median_text(g, f'{c}_time', f'{c}_event')} ({int(g[c].notna().sum())})" for c in PHASES),
                     km_median_text(g), num(lead.median() if len(lead) else None, ".0f"),
                     *(num(r, ".2f") for r in ranks)])
    tests, ps = [], []
    for pair in pairs:
        a, b = (timed[timed["optimizer"] == arm] for arm in pair)
        for c in PHASES:
            t = perm_logrank(a, b, ("task",), f"{c}_time", f"{c}_event")
            ps.append(t.p)
            tests.append(([versus(pair)] if len(pairs) > 1 else []) + [c, num(t.statistic, ".3f"), perm_text(t)])
    for row, p in zip(tests, stats.holm(ps)):
        row.append(num(p, ".3g"))
    first, second = names(pairs)
    return "\n".join([
        "\n## Phases (Fourier probes)\n",
        "From the Fourier probes every `probe_every` epochs (fourier.py; the number tokens' embedding and the "
        "logits over the training rows): *restricted drop*, the first probe epoch at which the loss from the "
        "key frequencies alone has fallen half of the way from its first value to its lowest (the circuit "
        "forming); *excluded rise*, the first at which the loss with the key frequencies removed has risen "
        "half of the way from its low point to its later peak (the fit coming to rest on them). Medians are "
        "Kaplan–Meier: a member whose curve never moves that far is censored at its last epoch (how many "
        "have the epoch, in brackets). *lead*: median grokking epoch − restricted drop over the members that "
        "have both. *update rank*, *gradient rank*: the mean stable rank ‖M‖_F²/‖M‖₂² over the hidden-matrix "
        "blocks (as Muon sees them) of the update a step applied and of the gradient it was given, on the first "
        "step of each probe epoch (probes.UpdateWatch); per member the median over its probe epochs up to its "
        "grokking epoch, then the median over members. Muon's update is near full rank by construction "
        "(orthogonalised); AdamW's is what this measures.\n",
        md_table(["task", "optimizer", "n", "KM median m", "KM median restricted drop", "KM median excluded rise",
                  "KM median g", "lead (median)", "update rank", "gradient rank"], rows),
        f"\n{first} against {second} on each phase epoch: stratified log-rank z within task (z < 0: {second} "
        f"sooner), permutation p. The grokking epoch stays the primary test (*{tests_heading(pairs)}*); "
        + holm_note(f"the two phase epochs ({2 * len(pairs)} tests)") + "\n",
        md_table([*(["pair"] if len(pairs) > 1 else []), "phase epoch", "stratified z", "permutation p", "Holm p"],
                 tests)])


def delay_section(done: pd.DataFrame, pairs=(PAPER,)) -> str:
    """Learning speed (memorisation epoch) and the grokking delay (grokking - memorisation), apart."""
    conds, rows = condition_axes(done), []
    strata, by = (*STRATA, *conds), ["task", *conds, "optimizer"]     # a row per condition too, where any
    for key, g in done.groupby(by, sort=True, dropna=False):
        plateau = plateaus(g)
        rows.append([*(value_text(v) for v in key), len(g), int(g["memorised"].sum()),
                     "–" if plateau is None else plateau, km_median_text(g, "mem_time", "mem_event"),
                     int(g["grokked"].sum()), int(g["no_delay"].sum()),
                     km_median_text(g, "delay_time", "delay_event"), km_median_text(g)])
    tests, ps = [], []
    for pair in pairs:
        a, b = (done[done["optimizer"] == arm] for arm in pair)
        for name, time, event in (("memorisation epoch", "mem_time", "mem_event"),
                                  ("delay", "delay_time", "delay_event"), ("grokking epoch", "time", "event")):
            t = perm_logrank(a, b, strata, time, event)
            ps.append(t.p)
            tests.append(([versus(pair)] if len(pairs) > 1 else []) + [name, num(t.statistic, ".3f"), perm_text(t)])
    ps = np.reshape(ps, (len(pairs), 3))
    side, primary = iter(stats.holm(ps[:, :2].ravel())), iter(stats.holm(ps[:, 2]))
    for i, row in enumerate(tests):
        row.append(primary_text(next(primary), pairs) if i % 3 == 2 else num(next(side), ".3g"))
    arms = list(dict.fromkeys(arm for pair in pairs for arm in pair))
    never = [f"{int((~done.loc[done['optimizer'] == arm, 'memorised']).sum())} {title(arm)}" for arm in arms]
    first, second = names(pairs)
    return "\n".join([
        "\n## Learning speed and grokking delay\n",
        "The grokking epoch g mixes how fast a member fits its training set (memorisation epoch m: train "
        "accuracy first ≥ the threshold) with how long it then waits to generalise (delay d = g − m). "
        "*no delay*: grokked members with d = 0, which generalised while they fit: they learned fast, they "
        "did not grok late. Medians are Kaplan–Meier: m is censored where a member never memorised, d where "
        "it memorised but never grokked (at its last epoch − m); a member that never memorised has no delay "
        "and is left out of the delay column. *plateau*: never memorised, and its train accuracy stayed "
        "within 0.05 and below 0.9 × the threshold over its last 50 epochs (stuck, not slow: a different "
        "failure from late grokking).\n",
        md_table([*by, "n", "memorised", "plateau", "KM median m", "grokked", "no delay (d = 0)",
                  "KM median d", "KM median g"], rows),
        f"\n{first} against {second} on each quantity: stratified log-rank z (within {within(strata)}; z < 0: "
        f"{second} sooner), permutation p (labels shuffled within strata). The grokking epoch is the primary "
        f"test (as in *{tests_heading(pairs)}*); "
        + holm_note(f"the memorisation epoch and the delay ({2 * len(pairs)} tests)") + primaries_note(pairs) +
        " **The delay is conditional on having memorised**, and the optimizer itself changes who "
        f"memorises: {within(never)} members never memorised (or diverged) and are not in it, so "
        "a delay difference may reflect which members fit, not how long the same members wait.\n",
        md_table([*(["pair"] if len(pairs) > 1 else []), "quantity", "stratified z", "permutation p", "Holm p"],
                 tests)])


def span(x: pd.Series, fmt: str = ".2f") -> str:
    """The values as "low–high" ("0.66–0.94"), or the one value where they agree to the format."""
    lo, hi = format(x.min(), fmt), format(x.max(), fmt)
    return lo if lo == hi else f"{lo}–{hi}"


def stopped_section(done: pd.DataFrame) -> str:
    """Where the members that did not grok (and did not diverge) stood when they stopped: their train
    and val accuracy at the last epoch, per cell. A member near the thresholds is late; one far below
    them, or on a plateau, is stuck."""
    if not {"final_train_acc", "final_val_acc"} <= set(done):
        return ""
    conds, rows = condition_axes(done), []
    left = done[~done["grokked"] & ~done["diverged"]]
    for key, g in left.groupby(["task", "head", *conds, "optimizer"], sort=True, dropna=False):
        rows.append([*(value_text(v) for v in key), len(g), int(g["memorised"].sum()), plateaus(g) or 0,
                     span(g["epochs_run"].astype(float), ".0f"), span(g["final_train_acc"].astype(float)),
                     span(g["final_val_acc"].astype(float))])
    if not rows:
        return ""
    return "\n".join([
        "\n## Where the members that did not grok stopped\n",
        "Members censored (not grokked, not diverged), per cell: how many memorised, how many sat on a "
        "plateau, and their train and val accuracy at their last epoch (lowest–highest).\n",
        md_table(["task", "head", *conds, "optimizer", "not grokked", "memorised", "plateau", "last epoch",
                  "train acc", "val acc"], rows)])


def cost_section(done: pd.DataFrame) -> str:
    """Per task (and condition) and optimizer: the grokking epoch beside the outside study's rule, and
    what grokking cost in the run's wall-clock seconds and in model FLOPs (runs.csv's columns from
    collect; an older table without them gets no section). Medians over the grokked members only."""
    if not {"wall_s_to_grok", "flops_to_grok", "grokking_epoch_near_max"} <= set(done):
        return ""
    rows, by = [], ["task", *condition_axes(done), "optimizer", *scanned_axes(done)]   # a scan's settings apart
    median = lambda x, fmt: num(float(np.median(x.dropna().astype(float))) if x.notna().any() else np.nan, fmt)
    for key, g in done.groupby(by, sort=True, dropna=False):
        grok = g[g["grokked"]]
        near = g["grokking_epoch_near_max"]
        rows.append([*(value_text(v) for v in key), f"{len(grok)}/{len(g)}", median(grok["grokking_epoch"], ".0f"),
                     f"{int(near.notna().sum())}/{len(g)}", median(near, ".0f"), median(grok["wall_s_to_grok"], ".0f"),
                     median(grok["flops_to_grok"].astype(float) / 1e12, ".3g")])
    return "\n".join([
        "\n## Cost to grok\n",
        "Epochs are not time: a Muon step adds its Newton–Schulz iterations. Per member, to its grokking "
        "epoch: the run's wall-clock seconds (metrics.csv's wall_s; an ensemble's members train together, "
        "so this is the time waited for all of them, on a shared machine, not a per-member share) and the "
        "member's model FLOPs (`grokmuon/cost.py`: every matmul of training, 3× the forward, and of the "
        "per-epoch evaluation; for Muon its 5 quintic Newton–Schulz steps per hidden matrix per step; "
        "elementwise work and the probes not counted). **Medians over the grokked members only** (the "
        "grokked column says how many): a member that never grokked has no cost to grok, so an optimizer "
        "that fails more often looks cheaper here; the Kaplan–Meier medians above count every member. "
        "*Near-max epoch*: the outside study's rule (Essential AI, “Muon Doesn't Clearly Grok Faster”, "
        "2025): the first epoch within 0.01 of the run's maximum val accuracy, that maximum ≥ the val "
        "threshold, no train condition (runs.csv's grokking_epoch_near_max; the maximum is over the "
        "epochs run, and runs stop once every member has grokked); median over the members it finds.\n",
        md_table([*by, "grokked", "median epoch", "near-max: found", "median near-max epoch",
                  "median wall s", "median TFLOP"], rows)])


def tuned_cells(tune: pd.DataFrame, g: pd.DataFrame, task, head, arm: str) -> list:
    """One arm in one task and head of `grokmuon tune`: its chosen setting, its race, and its
    confirmation members' counts and medians ("–" where it has none)."""
    c, t = g[g["optimizer"] == arm], tune[(tune["task"] == task) & (tune["head"] == head) & (tune["optimizer"] == arm)]
    if c.empty:
        return ["–"] * 5
    settings = len(t[["lr", "weight_decay"]].drop_duplicates())
    raced = sorted(tune.loc[(tune["task"] == task) & (tune["optimizer"] == arm), "head"].unique())
    grid = (f"{settings} settings × {t['seed'].nunique()} seeds" if len(t) else
            f"none for this head: {', '.join(raced)}'s choice" if raced else "no tuning run")
    rounds = t.groupby(race_rounds(t))["epochs_run"].max()      # the grid, then any windows past its edges
    if len(rounds) > 1:
        grid += f" (the grid, then {len(rounds) - 1} window{'s' if len(rounds) > 2 else ''} past its edge)"
    stopped = ", ".join(str(int(e)) for e in rounds) if len(t) else None
    return [f"lr {value_text(c['lr'].iloc[0])}, wd {value_text(c['weight_decay'].iloc[0])}",
            f"{grid}, stopped at {stopped}" if stopped is not None else grid,
            f"{int(c['grokked'].sum())}/{len(c)}", km_median_text(c),
            km_median_text(c, "delay_time", "delay_event")]


def fresh_text(confirm: pd.DataFrame, pair: tuple[str, str]) -> str:
    """The pair's primary test without the strata that are `grokmuon tune`'s own confirmation cells,
    collected beside new runs at the chosen settings (experiment=heads_tuned): counted in results/tune
    already, so not new evidence here ("" where no stratum or every one is reused)."""
    confirm = confirm[confirm["optimizer"].isin(pair)]
    reused = confirm["role"] == "confirm" if "role" in confirm else pd.Series(False, index=confirm.index)
    if not reused.any() or reused.all():
        return ""
    new = confirm[~reused]
    t_new = perm_logrank(*(new[new["optimizer"] == arm] for arm in pair), strata_of(confirm))
    key = stratum_key(confirm, strata_of(confirm))
    both = key.groupby(key).transform(lambda k: confirm.loc[k.index, "optimizer"].nunique() > 1)
    n_reused, n_all = key[reused & both].nunique(), key[both].nunique()       # strata a test can use
    return (f"\nWithout the {n_reused} of its {n_all} strata (with both optimizers) that are "
            "`grokmuon tune`'s own confirmation cells (reused here, already counted in its own report), "
            "the new strata alone: z = "
            f"{num(t_new.statistic, '.3f')}, permutation p = {perm_text(t_new)}.\n")


def tuned_section(tune: pd.DataFrame, confirm: pd.DataFrame, pairs=(PAPER,)) -> str:
    """`grokmuon tune`: each arm's chosen setting, its tuning race, and the confirmation runs, per pair."""
    tables, ps = [], []
    for pair in pairs:
        rows = []
        for (task, head), g in confirm.groupby(["task", "head"]):
            a, b = (g[g["optimizer"] == arm] for arm in pair)
            t = perm_logrank(a, b, ()) if len(a) and len(b) else stats.PermTest(np.nan, np.nan, 0, False, np.nan)
            lr = stats.logrank(a["time"], a["event"], b["time"], b["event"]) if len(a) and len(b) else stats.Test(np.nan, np.nan)
            ps.append(t.p)
            rows.append([task, head, *(x for arm in pair for x in tuned_cells(tune, g, task, head, arm)),
                         num(t.statistic, ".3f"), perm_text(t), None, num(lr.p, ".3g")])
        tables.append(rows)
    adjusted = iter(stats.holm(ps))
    for rows in tables:
        for row in rows:
            row[-2] = num(next(adjusted), ".3g")
    overall = [perm_logrank(*(confirm[confirm["optimizer"] == arm] for arm in pair), strata_of(confirm))
               for pair in pairs]
    primary = stats.holm([t.p for t in overall])
    header = lambda pair: ["task", "head"] + [f"{title(n)} {x}" for n in pair for x in
                                              ("chosen", "tuning race", "grokked", "KM median", "KM median delay")] + \
        ["log-rank z", "exact p", "Holm p", "normal p"]
    lines = [f"\nThe primary test, all rows stratified by {within(strata_of(confirm))}: z = {num(t.statistic, '.3f')}, "
             f"permutation p = {perm_text(t)} (z < 0: {title(pair[1])} sooner).\n" + fresh_text(confirm, pair)
             if len(pairs) == 1 else
             f"\n{versus(pair)}: the primary test, all rows stratified by {within(strata_of(confirm))}: "
             f"z = {num(t.statistic, '.3f')}, permutation p = {perm_text(t)}, Holm p over the {len(pairs)} pairs "
             f"{num(p, '.3g')} (z < 0: {title(pair[1])} sooner).\n" + fresh_text(confirm, pair)
             for pair, t, p in zip(pairs, overall, primary)]
    return "\n".join([
        "\n## Tuned against tuned\n",
        "Each optimizer raced its own (lr, weight decay) grid, of the same size, on the tuning seeds and took "
        f"the setting racing picks ({racing.RULE}); the table judges that setting on fresh confirmation seeds "
        "only (choosing and judging on the same seeds would flatter both). The exact p counts every "
        "arrangement of the optimizer labels among the confirmation members; the normal p is beside it. "
        + holm_note(f"every row of {'this table' if len(pairs) == 1 else 'these tables'} with a test "
                    f"({sum(not np.isnan(p) for p in ps)})") + "\n",
        pair_tables(pairs, [md_table(header(pair), rows) for pair, rows in zip(pairs, tables)]),
        *lines])


def race_rounds(tune: pd.DataFrame) -> pd.Series:
    """Each tuning member's race: 0 the grid, 1.. the windows raced past its edges (race_round; blank: 0)."""
    col = tune["race_round"] if "race_round" in tune else pd.Series(0, index=tune.index)
    return pd.to_numeric(col, errors="coerce").fillna(0).astype(int).rename("race_round")


def tuning_table(tune: pd.DataFrame) -> str:
    """Every setting of every tuning race (a window past a grid's edge is a race of its own, `round` ≥ 1,
    and may race a setting of the grid again): how many seeds grokked before the race stopped."""
    tune = tune.assign(race_round=race_rounds(tune))
    windows = bool((tune["race_round"] > 0).any())
    keys = ["task", "head", "optimizer", *(["race_round"] if windows else [])]
    rows = []
    for key, g in tune.groupby([*keys, "lr", "weight_decay"]):
        rows.append([*(value_text(v) for v in key), len(g), int(g["grokked"].sum()),
                     int((g["status"] == "raced_out").sum()), km_median_text(g)])
    cost = []
    for key, g in tune.groupby(keys):
        run_epochs = int(g["epochs_run"].max())
        budget = int(g["max_epochs"].max()) if "max_epochs" in g else run_epochs
        wall = g["wall_s"].dropna()
        cost.append([*(value_text(v) for v in key), len(g), run_epochs, budget, f"{budget / run_epochs:.1f}×",
                     f"{float(wall.iloc[0]) / 3600:.2f}" if len(wall) else "–",
                     f"{float(wall.iloc[0]) * budget / run_epochs / 3600:.1f}" if len(wall) else "–"])
    return "\n".join([
        "\n## Tuning races\n",
        "Members stopped by the race are *raced out*: censored where the race stopped, not at the budget. "
        "A setting's KM median shows only where at least half its seeds grokked before the stop."
        + (" *round*: 0 the grid, 1 and 2 the windows raced one step past a chosen setting on the grid's edge "
           "(docs/tuning.md), each stopped on its own." if windows else "") + "\n",
        md_table(["task", "head", "optimizer", *(["round"] if windows else []), "lr", "weight decay", "n",
                  "grokked", "raced out", "KM median"], rows),
        "\nWhat racing saved: a grid is one ensemble, so every member runs as long as the grid does. Without "
        "the race it would run to the budget unless every member grokked first (settings that had not even "
        "fit the training set when the race stopped make that the likely case); the hours to budget scale "
        "the race's own wall time by budget / stop, an estimate at the same cost per epoch.\n",
        md_table(["task", "head", "optimizer", *(["round"] if windows else []), "members", "race stopped at",
                  "budget", "saved (epochs)",
                  "race wall hours", "to budget, hours (est.)"], cost)])


def paper_table(done: pd.DataFrame) -> str:
    c, P = compare(done), stats.PAPER
    w = c["welch"]
    return md_table(["", "paper", "ours"], [
        ["mean grokking epoch, AdamW", P["adamw_mean"], num(c["means"][0], ".2f")],
        ["mean grokking epoch, Muon", P["muon_mean"], num(c["means"][1], ".2f")],
        ["t (AdamW − Muon)", P["t"], f"{num(w.statistic, '.4f')} (Welch, df {num(w.df, '.1f')})"],
        ["p, two-sided", f"{P['p']:.3g} (as reported)", num(w.p, ".3g")],
        ["runs grokked, AdamW / Muon", "not given", "{} / {}".format(*c["grokked"])],
    ])


def pooling_note(done: pd.DataFrame, pairs=(PAPER,)) -> str:
    """What the cells hold beside their seeds: a scan (a note), conditions (a note) or mixed sweeps (a
    warning that the tables pool over them)."""
    varying = varying_axes(done)
    scanned, conds = scanned_axes(done), condition_axes(done)
    count = lambda c: varying[c] if c in SCANNED else done[c].nunique(dropna=False)   # a condition: all its values
    spread = lambda cols: ", ".join(f"{c} ({count(c)} values)" for c in cols)
    notes = []
    if scanned:
        notes.append("\n**Note:** this table scans " + spread(scanned) + f". The {tests_heading(pairs)} tests and the "
                     "tables by optimizer, task and head pool over the scanned values; compare optimizers in "
                     "*By scanned value* at the end, best setting against best.\n")
    if conds:
        along = [c for c in CONDITIONS if c in done and c not in conds and done[c].nunique(dropna=False) > 1]
        notes.append("\n**Note:** this table compares the optimizers at each " + spread(conds)
                     + (f" ({', '.join(along)} moving with them)" if along else "") + ". The stratified "
                     f"log-rank and its permutation p compare {names(pairs)[0]} with {names(pairs)[1]} within each of these values "
                     "(strata), the test table has a row per value, and *By condition, per task* sets them "
                     "against each other at every one. The pooled log-rank, Welch t, Mann–Whitney U and the "
                     "CI of the test table, the tables by optimizer, task and head, the paper's comparison "
                     "and figures 1–3 put the values together.\n")
    mixed = {c: n for c, n in varying.items() if c not in SCANNED and c not in CONDITIONS}
    if mixed:
        notes.append("\n**Warning:** members of one cell differ in " + ", ".join(
            f"{c} (up to {n} values)" for c, n in mixed.items()) + "; the groups below pool over them. Collect "
            "one sweep at a time (`grokmuon collect multirun/<experiment>`).\n")
    return "".join(notes)


def setting_text(scanned: list[str], values: tuple) -> str:
    """A setting of the scanned columns as the report writes it: "lr = 0.001, batch_size = 128"."""
    return ", ".join(f"{c} = {value_text(v)}" for c, v in zip(scanned, values))


def scan_section(done: pd.DataFrame, pairs=(PAPER,)) -> str:
    """Per cell and scanned value: the group table, and each optimizer at its best value against the other."""
    scanned = scanned_axes(done)
    if not scanned:
        return ""
    tables, ps, by = [], [], ["task", "head", *condition_axes(done)]       # a best per condition, never across them
    for a, b in pairs:
        rows = []
        for key, g in done.groupby(by, sort=True, dropna=False):
            best = {arm: best_setting(g[g["optimizer"] == arm], scanned) for arm in (a, b)}
            text = [f"{setting_text(scanned, s[0])}: {km_median_text(s[1])}" if s else "none: fewer than half grokked anywhere"
                    for s in best.values()]
            test = stats.logrank(best[a][1]["time"], best[a][1]["event"], best[b][1]["time"], best[b][1]["event"]) \
                if all(best.values()) else stats.Test(np.nan, np.nan)
            ps.append(test.p)
            rows.append([*(value_text(v) for v in key), *text, num(test.statistic, ".3f"), num(test.p, ".3g")])
        tables.append(rows)
    adjusted = iter(stats.holm(ps))
    for rows in tables:
        for row in rows:
            row.append(num(next(adjusted), ".3g"))
    return "\n".join([
        "\n## By scanned value\n",
        "Each optimizer at its best setting (the one with the earliest Kaplan–Meier median), then the "
        f"log-rank test of the two best settings (z < 0: {names(pairs)[1]} sooner). The best is chosen on the same runs "
        "it is judged by, so both medians are optimistic and the test is exploratory; confirm on fresh "
        "seeds before quoting it. *Holm p*: the (normal) log-rank p adjusted by Holm's step-down over every "
        f"row of {'this table' if len(pairs) == 1 else 'these tables'} ({sum(not np.isnan(p) for p in ps)} tests).\n",
        pair_tables(pairs, [md_table([*by, f"{title(a)} best: KM median", f"{title(b)} best: KM median", "log-rank z",
                                      "p", "Holm p"], rows) for (a, b), rows in zip(pairs, tables)]),
        "", group_table(done, [*by, "optimizer", *scanned])])


def rule_near_max(done: pd.DataFrame) -> bool:
    """Whether the members are judged by the near-max rule (results.finished swapped their epochs)."""
    return "grokking_epoch_first" in done


def chosen_pairs(arms, reference: str | None = None, extra=()) -> list[tuple[str, str]]:
    """arm_pairs of the table's arms, with a reference (default REFERENCE, or the first arm in arms.order
    where the table has several arms but not that one) and extra pairs the user named;
    TableError (one line) for a named arm the table does not have, or a pair of one arm with itself."""
    known = order(arms)
    for arm in ([reference] if reference is not None else []) + [x for pair in extra for x in pair]:
        if arm not in known:
            raise TableError(f"no arm {arm!r} in this table; its arms: {', '.join(known)}")
    for a, b in extra:
        if a == b:
            raise TableError(f"the pair {a!r}:{b!r} sets an arm against itself")
    if reference is None:       # no AdamW among several arms: the first of them (a table of one arm keeps AdamW)
        reference = REFERENCE if REFERENCE in known or len(known) < 2 else known[0]
    return arm_pairs(known, reference, extra)


def report(table: pd.DataFrame, source: str, reference: str | None = None, pairs=()) -> str:
    """The whole markdown report for a results table (rows of unfinished runs are counted, then left out):
    every arm against `reference` (default REFERENCE), then the extra `pairs` (a, b), b against a."""
    everything = finished(by_arm(table), source)
    done = judged(everything)
    pairs = chosen_pairs(everything["optimizer"].unique(), reference, pairs)
    first, second = names(pairs)
    arms = order(everything["optimizer"].unique())
    tune = everything[everything["role"] == "tune"] if len(done) < len(everything) else everything.iloc[:0]
    P = stats.PAPER
    val, train = done["grok_val_acc"].iloc[0], done["grok_train_acc"].iloc[0]
    unfinished = len(table) - len(everything)
    runs = everything.drop_duplicates("run_dir") if "run_dir" in everything else everything.iloc[:0]
    hours = runs["wall_s"].astype(float).sum() / 3600 if "wall_s" in runs and runs["wall_s"].notna().any() else None
    parts = [
        (f"# Grokking epochs: {versus(pairs[0])}\n\n" if len(pairs) == 1 else
         f"# Grokking epochs: {len(arms)} arms, each against {title(pairs[0][0])}\n\nArms (an optimizer and its "
         f"keys that differ from its defaults; grokmuon/arms.py): {', '.join(f'`{a}`' for a in arms)}. Pairs "
         f"(B against A): {', '.join(f'{title(b)} against {title(a)}' for a, b in pairs)}.\n\n")
        + f"Source: `{source}`: {len(done)} members of "
        f"{done['run_dir'].nunique() if 'run_dir' in done else '?'} complete runs"
        + (f" ({unfinished} members of unfinished runs left out)" if unfinished else "") + "."
        + (f" Compute: {hours:.2f} wall-clock hours summed over its {len(runs)} complete run folders"
           f"{', tuning races included' if len(tune) else ''}." if hours is not None else "")
        + (f" These are the confirmation runs of `grokmuon tune`"
           + (f" and {(done['role'] != 'confirm').sum()} members run beside them at the chosen settings"
              if (done["role"] != "confirm").any() else "")
           + f"; its {len(tune)} tuning members are in *Tuning races* at the end and in no test."
           if len(tune) else "") + "\n",
        (f"Grokking epoch: the first epoch with validation accuracy ≥ {val} while train accuracy ≥ {train}. "
         if not rule_near_max(done) else
         f"Grokking epoch, by the later study's rule (`grok_rule=near_max`; Essential AI, “Muon Doesn't Clearly "
         f"Grok Faster”, 2025): the first epoch whose validation accuracy is within 0.01 of the run's maximum, "
         f"which must reach {val}; no train-accuracy condition. The first crossing (validation ≥ {val} while "
         f"train ≥ {train}) is `grokking_epoch_first` in the table. ")
        + "**Mean, sd and median are over the members that grokked only.** *Censored*: did not grok within "
        "its budget; *diverged*: its loss became NaN/inf (counted apart, not censored). *KM median*: "
        "Kaplan–Meier median over all members, censored ones included (a diverged member counts as "
        "censored at the budget); “> N” when fewer than half grokked.\n",
        pooling_note(done, pairs),
        tuned_section(tune, done, pairs) if len(tune) else "",
        "## Beside the paper\n", paper_table(done),
        f"\nThe paper's p is inconsistent with its t: the two-sided p at t = {P['t']} is "
        f"{stats.p_from_t(P['t']):.2g} under a normal distribution and larger under any Student t "
        f"({stats.p_from_t(P['t'], 1000):.2g} at df = 1000); p = {P['p']:.3g} would need "
        f"|t| ≈ {stats.t_for_p(P['p']):.2f}. Ours is scipy's Welch test on the grokked members.\n",
        f"## {tests_heading(pairs)}\n",
        ("" if len(pairs) == 1 else "Each table below sets an arm B against an arm A: every arm against the "
         f"reference, {title(pairs[0][0])}, then any pair named. ") +
        "The headline test is the *stratified* log-rank: it counts every member, censoring included, and "
        f"compares {first} with {second} only within each {within(strata_of(done))} (the axes the row pools over), summing the "
        f"evidence (z < 0: {first} groks later than it would if both optimizers were alike, i.e. {second} sooner). "
        "Its *permutation p* comes first: the optimizer labels shuffled within each stratum, the statistic "
        "the standardised z, exact over every arrangement where there are at most 20,000 of them (a 3 vs 3 "
        "task has 20, so p ≥ 0.1 there), else 20,000 seeded draws with the Monte Carlo error beside it. "
        "The *normal p* beside it is the usual approximation, rough on strata this small. The pooled "
        "log-rank mixes tasks of different difficulty (and conditions, where the table varies any). Welch t, Mann–Whitney U and the bootstrap CI "
        "(10,000 resamples, seed 0, percentile) compare the grokked members only (the paper's test).\n\n"
        + ("**One pre-declared primary test:** the *all* row's stratified log-rank with its permutation p. "
           if len(pairs) == 1 else
           "**One pre-declared primary test per pair:** the *all* row's stratified log-rank with its "
           "permutation p. ") +
        "Every other row is a subgroup. " + holm_note("every row but *all* (and those that hold all "
                                                      "its members again: “= all”)"
                                                      + ("" if len(pairs) == 1 else " of every pair's table"))
        + primaries_note(pairs) + " The other p columns are unadjusted.\n",
        tests_table(done, pairs),
        delay_section(done, pairs),
        held_section(done),
        phases_section(done, pairs),
        stopped_section(done),
        cost_section(done),
        "\n## By optimizer\n", group_table(done, ["optimizer"]),
        "\n## By task\n", group_table(done, ["task", "optimizer"]),
        "\n## By head\n", group_table(done, ["head", "optimizer"]),
        versus_section(done, pairs),
        "\n## By cell\n", group_table(done, ["task", "head", "optimizer"]),
        scan_section(done, pairs),
        tuning_table(tune) if len(tune) else "",
    ]
    return "\n".join(p for p in parts if p) + "\n"
