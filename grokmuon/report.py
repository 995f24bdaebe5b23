"""The results table -> a markdown report: grokking epochs per group, each arm against a reference arm (and
any pairs named), the paper beside us.

An arm (grokmuon/arms.py) is an optimizer with its non-default keys; the report's tables group by it in
their `optimizer` column. A pair (a, b) sets arm b against arm a: a is the first group of every test (the
paper's t is AdamW minus Muon), so z < 0 means b groks sooner. Each section's Holm family spans every pair
it shows; with one pair (AdamW, Muon: the paper's study) the report is what it was before arms.

This module holds the headline (the primary tests, the paper beside us, each cell by head or condition,
a scan's best settings) and assembles the whole report; the helpers every section shares are in
report_tables.py, the sections on how members came to grok (delay, whether it held, phases, where the
others stopped, cost) in report_dynamics.py, those on `grokmuon tune`'s runs in report_tuning.py.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .arms import PAPER, order, title
from .report_dynamics import cost_section, delay_section, held_section, phases_section, stopped_section
from .report_tables import (REFERENCE, STRATA, arm_pairs, group_table, holm_note, in_shared_strata, km_median_text,
                            md_table, n_tests, names, num, pair_tables, perm_logrank, perm_text, plateaus,
                            primaries_note, primary_text, run_hours, strata_of, stratum_key, tests_heading, value_text,
                            versus, within)
from .report_tuning import compute_table, tuned_section, tuning_table
from .results import (CONDITIONS, SCANNED, TableError, best_setting, by_arm, condition_axes, finished, judged,
                      scanned_axes, split_arms, varying_axes)


def compare(done: pd.DataFrame, strata: tuple = STRATA, pair: tuple[str, str] = PAPER) -> dict:
    """One pair of arms (a, b; default AdamW vs Muon) on one group: the tests of stats.py, keyed by name.
    The stratified log-rank compares within each combination of the `strata` columns (those the group
    still pools over). Where the group holds both arms, only strata holding both count: a condition run
    for one arm alone (a sweep still landing) has nothing to be compared with, and pooled with the rest it
    would set one arm's condition against the other's in every unstratified column (n, KM medians,
    means, Welch, U). A group of one arm is described as it is (n, KM median), with no test."""
    a, b, _ = in_shared_strata(done, strata, pair)
    key = lambda g: list(stratum_key(g, strata)) if len(g) else []
    ga, gb = a.loc[a["grokked"], "grokking_epoch"].astype(float), b.loc[b["grokked"], "grokking_epoch"].astype(float)
    diff, lo, hi = stats.bootstrap_mean_diff(ga, gb)
    return {"n": (len(a), len(b)), "grokked": (len(ga), len(gb)), "means": (ga.mean(), gb.mean()),
            "diff": (diff, lo, hi), "welch": stats.welch_t(ga, gb), "mwu": stats.mann_whitney(ga, gb),
            "km": (km_median_text(a) if len(a) else "–", km_median_text(b) if len(b) else "–"),
            "logrank": stats.logrank(a["time"], a["event"], b["time"], b["event"]),
            "stratified": stats.logrank_stratified(a["time"], a["event"], key(a), b["time"], b["event"], key(b)),
            "perm": perm_logrank(a, b, strata),
            "compared": frozenset(a.index) | frozenset(b.index) if len(a) and len(b) else frozenset()}


def left_out_note(done: pd.DataFrame, pairs=(PAPER,)) -> str:
    """A line for each pair whose arms were both run but not in the same strata (compare leaves those out):
    how many members, which strata. Empty where every stratum holds both or one arm was never run."""
    strata, lines = strata_of(done), []
    for pair in pairs:
        a, b, alone = in_shared_strata(done, strata, pair)
        if alone:
            n = int(done["optimizer"].isin(pair).sum()) - len(a) - len(b)
            lines.append(f"**Left out of every comparison of {title(pair[0])} and {title(pair[1])}:** {n} members "
                         f"in strata ({'/'.join(strata)}) that hold one of them only: {', '.join(alone)}. Each "
                         "row's n counts the members it compares; *By optimizer*, *By task* and *By cell* "
                         "count them all.\n")
    return "\n".join(lines)


def tests_table(done: pd.DataFrame, pairs=(PAPER,)) -> tuple[str, np.ndarray]:
    """The test tables (one a pair) and the pairs' primary permutation p (NaN: no test), Holm's family."""
    conds = condition_axes(done)
    groups = [("all", done, (*STRATA, *conds))] + \
             [(f"task={k}", g, ("head", *conds)) for k, g in done.groupby("task")] + \
             [(f"head={k}", g, ("task", *conds)) for k, g in done.groupby("head")] + \
             [(f"{c}={value_text(v)}", g, (*STRATA, *(x for x in conds if x != c)))
              for c in conds for v, g in done.groupby(c, dropna=False)]
    # The family: every row but "all" (the primary test) and rows that hold every member again (a head
    # when the table has one head only): those are the primary test once more, not a subgroup. Every
    # pair's subgroups are one family; the pairs' primary tests another.
    # Judged by the members each row compares (compare leaves out strata holding one arm), the first pair's:
    # the same members, not the same count (a row of one arm compares none, whatever its n).
    tables, perms, compared = [], [], []
    for pair in pairs:
        rows = []
        for name, g, strata in groups:
            c = compare(g, strata, pair)
            perms.append(c["perm"].p)
            rows.append(test_row(name, c))
            if pair == pairs[0]:
                compared.append(c["compared"])
        tables.append(rows)
    again = [bool(m) and m == compared[0] for m in compared]
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
    return pair_tables(pairs, [md_table(header(title(a), title(b)), rows) for (a, b), rows in zip(pairs, tables)]), perms[:, 0]


def test_row(name: str, c: dict) -> list:
    """A row of the test table from compare()'s tests (its Holm cell, index 6, filled in after)."""
    d, w, u, lr, st = c["diff"], c["welch"], c["mwu"], c["logrank"], c["stratified"]
    return [name, "{}/{}".format(*c["n"]), "{}/{}".format(*c["grokked"]), "{}/{}".format(*c["km"]),
            num(st.statistic, ".3f"), perm_text(c["perm"]), None, num(st.p, ".3g"),
            num(lr.statistic, ".3f"), num(lr.p, ".3g"),
            f"{num(d[0])} [{num(d[1])}, {num(d[2])}]", num(w.statistic, ".3f"), num(w.p, ".3g"),
            num(u.statistic, ".0f"), num(u.p, ".3g")]


def cell_verdict(z: float, p: float, alpha: float = 0.05, pair: tuple[str, str] = PAPER) -> str:
    """Which arm of the pair groks sooner in one cell, only where its p (the Holm-adjusted one) says so
    (z < 0: the second)."""
    if np.isnan(p) or p >= alpha:
        return f"neither (Holm p {num(p, '.2g')})" if not np.isnan(p) else "–"
    return title(pair[1]) if z < 0 else title(pair[0])


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


def paper_table(done: pd.DataFrame) -> str:
    c, P = compare(done, strata_of(done)), stats.PAPER
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
        f"row of {'this table' if len(pairs) == 1 else 'these tables'} ({n_tests(ps)}).\n",
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


def report(table: pd.DataFrame, source: str, reference: str | None = None, pairs=(), arm_by=()) -> str:
    """The whole markdown report for a results table (rows of unfinished runs are counted, then left out):
    every arm against `reference` (default REFERENCE), then the extra `pairs` (a, b), b against a;
    `arm_by`: scanned columns whose values split the arms further (results.split_arms)."""
    everything = finished(by_arm(split_arms(table, list(arm_by))), source)
    done = judged(everything)
    pairs = chosen_pairs(everything["optimizer"].unique(), reference, pairs)
    first, second = names(pairs)
    arms = order(everything["optimizer"].unique())
    tune = everything[everything["role"] == "tune"] if len(done) < len(everything) else everything.iloc[:0]
    P = stats.PAPER
    val, train = done["grok_val_acc"].iloc[0], done["grok_train_acc"].iloc[0]
    unfinished = len(table) - len(everything)
    runs = everything.drop_duplicates("run_dir") if "run_dir" in everything else everything.iloc[:0]
    hours = run_hours(everything)
    tests_text, primary_ps = tests_table(done, pairs)
    parts = [
        (f"# Grokking epochs: {versus(pairs[0])}\n\n" if len(pairs) == 1 else
         f"# Grokking epochs: {len(arms)} arms, each against {title(pairs[0][0])}\n\nArms (an optimizer and its "
         f"keys that differ from its defaults; grokmuon/arms.py"
         + "".join(f"; and each value of {k}, default or not" for k in arm_by)
         + f"): {', '.join(f'`{a}`' for a in arms)}. Pairs "
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
         f"train ≥ {train}) is runs.csv's `grokking_epoch`; this report reads its `grokking_epoch_near_max` "
         "in its place. ")
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
        + primaries_note(pairs, primary_ps) + " The other p columns are unadjusted.\n",
        left_out_note(done, pairs),
        tests_text,
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
        compute_table(everything) if len(tune) else "",
    ]
    return "\n".join(p for p in parts if p) + "\n"
