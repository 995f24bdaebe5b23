"""The report's sections on `grokmuon tune`'s runs: tuned against tuned (each arm's chosen setting, its
race and its confirmation members, tested per pair) and every setting of every tuning race with what
racing saved. grokmuon/report.py places them where a table holds tuning members.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import racing, stats
from .arms import PAPER, order, title
from .results import CONDITIONS, TableError, as_raced, condition_axes, outcome
from .report_tables import (holm_note, km_median_text, md_table, num, pair_tables, perm_logrank, perm_text,
                            run_hours, in_shared_strata, strata_of, stratum_key, value_text, versus, within)


def same_cell(df: pd.DataFrame, keys: list[str], cell: pd.DataFrame) -> pd.Series:
    """Which rows of df share cell's values of keys (the cell's rows all share them): the tuning members of
    a confirmation's own condition, never those raced at another batch size or width."""
    return stratum_key(df, keys) == stratum_key(cell.iloc[:1], keys).iloc[0]


def tuned_cells(tune: pd.DataFrame, g: pd.DataFrame, keys: list[str], arm: str) -> list:
    """One arm in one cell (keys: task, head and any condition the table varies) of `grokmuon tune`: its
    chosen setting, its race, and its confirmation members' counts and medians ("–" where it has none)."""
    c, mine = g[g["optimizer"] == arm], tune["optimizer"] == arm
    if c.empty:
        return ["–"] * 5
    t = tune[mine & same_cell(tune, keys, g)]
    settings = len(t[["lr", "weight_decay"]].drop_duplicates())
    other_heads = [k for k in keys if k != "head"]
    raced = sorted(tune.loc[mine & same_cell(tune, other_heads, g), "head"].unique())
    grid = (f"{settings} settings × {t['seed'].nunique()} seeds" if len(t) else
            f"none for this head: {', '.join(raced)}'s choice" if raced else "no tuning run")
    rounds = pd.Series({r: race_stop(g) for r, g in t.groupby(race_rounds(t))})   # the grid, then any windows
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
    # A row per task, head and condition, each tuned on its own: the conditions of the races too, for a
    # condition raced but not yet confirmed must not lend its race to another's row.
    keys = list(strata_of(pd.concat([tune, confirm])))
    for pair in pairs:
        rows = []
        for key, g in confirm.groupby(keys, dropna=False):
            a, b = (g[g["optimizer"] == arm] for arm in pair)
            t = perm_logrank(a, b, ()) if len(a) and len(b) else stats.PermTest(np.nan, np.nan, 0, False, np.nan)
            lr = stats.logrank(a["time"], a["event"], b["time"], b["event"]) if len(a) and len(b) else stats.Test(np.nan, np.nan)
            ps.append(t.p)
            rows.append([*map(value_text, key), *(x for arm in pair for x in tuned_cells(tune, g, keys, arm)),
                         num(t.statistic, ".3f"), perm_text(t), None, num(lr.p, ".3g")])
        tables.append(rows)
    adjusted = iter(stats.holm(ps))
    for rows in tables:
        for row in rows:
            row[-2] = num(next(adjusted), ".3g")
    strata = strata_of(confirm)
    overall = [perm_logrank(*in_shared_strata(confirm, strata, pair)[:2], strata) for pair in pairs]
    primary = stats.holm([t.p for t in overall])
    tested = sum(not np.isnan(t.p) for t in overall)     # a pair with an arm not yet confirmed: no test
    header = lambda pair: keys + [f"{title(n)} {x}" for n in pair for x in
                                              ("chosen", "tuning race", "grokked", "KM median", "KM median delay")] + \
        ["log-rank z", "exact p", "Holm p", "normal p"]
    lines = [f"\nThe primary test, all rows stratified by {within(strata)}: z = {num(t.statistic, '.3f')}, "
             f"permutation p = {perm_text(t)} (z < 0: {title(pair[1])} sooner).\n" + fresh_text(confirm, pair)
             if len(pairs) == 1 else
             f"\n{versus(pair)}: the primary test, all rows stratified by {within(strata)}: "
             f"z = {num(t.statistic, '.3f')}, permutation p = {perm_text(t)}, Holm p over the {tested} pairs "
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


def race_stop(race: pd.DataFrame) -> int:
    """Where one race (a round) stopped, from its evidence: the best median of its settings on the first
    crossing (the rule a race stops on), else (no setting has one) its last epoch. For a race in parts
    (`grokmuon tune --race-chunks`) that is where the whole race would have stopped, whichever part ran
    longer or ended early (every member done); for a race of one run folder, the epoch it stopped at."""
    if "run_dir" not in race or race["run_dir"].nunique() < 2:     # one run folder: where it stopped
        return int(race["epochs_run"].max())
    best = racing.best_median(race_epochs(as_raced(race)))
    return int(best) if best is not None else int(race["epochs_run"].max())


def as_whole_race(race: pd.DataFrame) -> pd.DataFrame:
    """One race's members as the whole race saw them at its stop (race_stop). A race of one run folder is
    as it ran. In a race in parts the first part runs until it decides, often past where the whole race
    stops: there a later grokking epoch is not known yet, and a member still running is raced out at the
    stop, so each setting's row counts what the choice was made on."""
    if "run_dir" not in race or race["run_dir"].nunique() < 2:
        return race
    stop = race_stop(race)
    late = race["grokking_epoch"].notna() & (race["grokking_epoch"].astype(float) > stop)
    cut = race.assign(grokking_epoch=race["grokking_epoch"].where(~late))
    running = cut["grokking_epoch"].isna() & (cut["epochs_run"] > stop)
    cut.loc[running, "status"] = "raced_out"
    cut.loc[running, "epochs_run"] = stop
    return outcome(cut)


def one_race_each(tune: pd.DataFrame, keys: list[str]) -> None:
    """TableError unless each race (keys) holds each member (setting, seed) once: two races' folders for
    one key (a race run again with another --race-chunks, or another plan's grid) would pool two races'
    evidence into one choice that neither made."""
    if "run_dir" not in tune:
        return
    member = [*keys, "lr", "weight_decay", "seed"]
    twice = tune[tune.duplicated(member, keep=False)]
    if twice.empty:
        return
    _, first = next(iter(twice.groupby(member, dropna=False)))
    row, folders = first.iloc[0], sorted(first["run_dir"].astype(str).unique())
    raise TableError(
        f"the tuning race {' '.join(value_text(row[k]) for k in keys)} has lr {value_text(row['lr'])} weight decay "
        f"{value_text(row['weight_decay'])} seed {int(row['seed'])} in {len(folders)} run folders "
        f"({', '.join(folders)}): two races for one key, e.g. one run again with another "
        f"--race-chunks; collect one race's folders only")


def race_epochs(race: pd.DataFrame) -> dict[tuple[float, float], list[int | None]]:
    """A race's grokking epochs by (lr, weight_decay), seeds in order; None where a member did not grok."""
    return {setting: [int(e) if ok else None for e, ok in zip(m["grokking_epoch"], m["grokked"])]
            for setting, m in race.sort_values("seed").groupby(["lr", "weight_decay"])}


def race_rounds(tune: pd.DataFrame) -> pd.Series:
    """Each tuning member's race: 0 the grid, 1.. the windows raced past its edges (race_round; blank: 0)."""
    col = tune["race_round"] if "race_round" in tune else pd.Series(0, index=tune.index)
    return pd.to_numeric(col, errors="coerce").fillna(0).astype(int).rename("race_round")


def tuning_table(tune: pd.DataFrame) -> str:
    """Every setting of every tuning race (a window past a grid's edge is a race of its own, `round` ≥ 1,
    and may race a setting of the grid again): how many seeds grokked before the race stopped."""
    tune = as_raced(tune).assign(race_round=race_rounds(tune))       # what the races stopped and chose on
    windows = bool((tune["race_round"] > 0).any())
    conditions = condition_axes(tune)        # a race per batch size or width where the table varies them
    keys = ["task", "head", *conditions, "optimizer", *(["race_round"] if windows else [])]
    one_race_each(tune, keys)
    seen = pd.concat([as_whole_race(g) for _, g in tune.groupby(keys, dropna=False)])   # what each race chose on
    rows = []
    for key, g in seen.groupby([*keys, "lr", "weight_decay"], dropna=False):
        rows.append([*(value_text(v) for v in key), len(g), int(g["grokked"].sum()),
                     int((g["status"] == "raced_out").sum()), km_median_text(g)])
    # A race run in parts (tune --race-chunks) has a cost row per part, in grid order (lr-major), named by
    # the settings it raced; the cost is what each part ran, not cut at the race's stop.
    in_parts = "run_dir" in tune and bool((tune.groupby(keys, dropna=False)["run_dir"].nunique() > 1).any())
    cost = []
    for key, race in tune.groupby(keys, dropna=False):
        folders = ([g for _, g in race.groupby("run_dir")] if in_parts else [race])
        for g in sorted(folders, key=lambda g: (g["lr"].min(), g["weight_decay"].min())):
            run_epochs = int(g["epochs_run"].max())
            budget = int(g["max_epochs"].max()) if "max_epochs" in g else run_epochs
            wall = g["wall_s"].dropna()
            cost.append([*(value_text(v) for v in key), *([part_text(g)] if in_parts else []),
                         len(g), run_epochs, budget, f"{budget / run_epochs:.1f}×",
                         f"{float(wall.iloc[0]) / 3600:.2f}" if len(wall) else "–",
                         f"{float(wall.iloc[0]) * budget / run_epochs / 3600:.1f}" if len(wall) else "–"])
    ties, nothing = race_notes(tune, keys)
    return "\n".join([
        "\n## Tuning races\n",
        "Members stopped by the race are *raced out*: censored where the race stopped, not at the budget. "
        "A setting's KM median shows only where at least half its seeds grokked before the stop."
        + (" *round*: 0 the grid, 1 and 2 the windows raced one step past a chosen setting on the grid's edge "
           "(docs/tuning.md), each stopped on its own." if windows else "") + "\n",
        md_table(["task", "head", *conditions, "optimizer", *(["round"] if windows else []), "lr", "weight decay", "n",
                  "grokked", "raced out", "KM median"], rows),
        *(["\n*Ties*: in these races the best settings were equal by every rule but grid order, which chose "
           "among them. Where that choice sits on an edge of what was raced, the response is flat there on the "
           "tuning seeds, so the edge does not suggest a better setting past it.\n", *ties] if ties else []),
        *(["\n*Nothing grokked*: no member of these races grokked by the budget, so the setting with the highest "
           "mean final validation accuracy was chosen (then grid order; racing.FALLBACK); each line gives its mean, "
           "then the next best's. Grokking also asks train accuracy to reach its threshold, which such a choice "
           "may not: it ranks validation accuracy only, and says nothing of which setting groks soonest.\n",
           *nothing] if nothing else []),
        "\nWhat racing saved: a grid is one ensemble, so every member runs as long as the grid does. Without "
        "the race it would run to the budget unless every member grokked first (settings that had not even "
        "fit the training set when the race stopped make that the likely case); the hours to budget scale "
        "the race's own wall time by budget / stop, an estimate at the same cost per epoch.\n",
        *(["A race run in parts (`grokmuon tune --race-chunks`) has a row per part, in grid order, named by the "
           "settings it raced; each part after the one run first stopped by the best median found before it (grid "
           "order, or the part holding a prior first: `--race-first`; the same choice either way). Its rows in "
           "the table above count what the whole race saw at its stop.\n"] if in_parts else []),
        md_table(["task", "head", *conditions, "optimizer", *(["round"] if windows else []),
                  *(["part"] if in_parts else []), "members", "race stopped at",
                  "budget", "saved (epochs)",
                  "race wall hours", "to budget, hours (est.)"], cost)])


def part_text(part: pd.DataFrame) -> str:
    """The settings one part of a race raced: its lr values × its weight decays, in grid order."""
    return " × ".join(f"{name} " + ", ".join(value_text(v) for v in sorted(part[col].unique()))
                      for name, col in (("lr", "lr"), ("wd", "weight_decay")))


def race_notes(tune: pd.DataFrame, keys: list[str]) -> tuple[list[str], list[str]]:
    """Two lists of lines, one line per race (keys) in each where it applies: its best settings that
    racing.tied finds equal but for grid order (Ties), and, where no member grokked, the setting
    racing.FALLBACK chose by its mean final validation accuracy and the next best (Nothing grokked)."""
    ties, nothing = [], []
    for key, g in tune.groupby(keys, dropna=False):
        configs = racing.truncate(race_epochs(g), race_stop(g))   # a race in parts: as the whole race saw it
        val = (racing.val_by_config(zip(g["lr"], g["weight_decay"], g["status"], g["final_val_acc"]))  # member order
               if "final_val_acc" in g else None)
        label = " ".join(f"round {v}" if k == "race_round" else f"{k} {value_text(v)}" if k in CONDITIONS
                         else value_text(v) for k, v in zip(keys, key))
        best = racing.tied(configs, val)
        if len(best) > 1:
            ties.append(f"- {label}: " + ", ".join(f"lr {value_text(lr)} wd {value_text(wd)}" for lr, wd in best)
                        + racing.tie_reason(configs, best, val))
        if val is not None and racing.none_grokked(configs):
            nothing.append(f"- {label}: " + "; ".join(f"lr {value_text(lr)} wd {value_text(wd)} {val[(lr, wd)]:.3f}"
                                                      for lr, wd in racing.by_accuracy(val)[:2]))
    return ties, nothing


def compute_table(everything: pd.DataFrame) -> str:
    """What each arm cost, task by task and in all: the hours of its races (the grid and any windows), of
    its confirmation, and of any other run beside them (a column only where there is one)."""
    conditions = condition_axes(everything)      # each batch size or width tuned and confirmed on its own
    keys = ["task", "head", *conditions, "optimizer"]
    role = everything["role"].fillna("")
    parts = {"races": role == "tune", "confirmation": role == "confirm", "other runs": ~role.isin(["tune", "confirm"])}
    parts = {k: v for k, v in parts.items() if v.any() or k != "other runs"}
    hours = lambda x: "–" if x is None else f"{x:.2f}"

    def cells(g: pd.DataFrame) -> list[str]:       # each part's hours, then their total
        each = [run_hours(g[mask.loc[g.index]]) if mask.loc[g.index].any() else None for mask in parts.values()]
        return [*map(hours, each), hours(None if all(x is None for x in each) else sum(x or 0.0 for x in each))]
    rows = [[*(value_text(v) for v in key), *cells(g)] for key, g in everything.groupby(keys, dropna=False)]
    if everything.groupby(["task", *conditions], dropna=False).ngroups > 1:   # several tasks or conditions: a total per arm
        rows += [["all", "", *([""] * len(conditions)), value_text(arm), *cells(everything[everything["optimizer"] == arm])]
                 for arm in order(everything["optimizer"].unique())]
    return "\n".join([
        "\n## Compute by arm\n",
        "Wall-clock hours of each arm's run folders (one process each): its tuning races (the grid and any "
        "windows), its confirmation at the chosen setting"
        + (", and any other run the table holds" if "other runs" in parts else "")
        + f" (–: none). *all*: summed over the tasks{' and conditions' if conditions else ''}. A confirmation that a later choice superseded is not "
        "here (its folder moved to the sweep's `_superseded` folder beside it).\n",
        md_table(["task", "head", *conditions, "arm", *(f"{k}, hours" for k in parts), "total, hours"], rows)])
