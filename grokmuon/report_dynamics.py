"""The report's sections on how members came to grok, or did not, and at what cost: learning speed and the
grokking delay, whether grokking held, the phases the Fourier probes date, where the members that did not
grok stopped, and the cost to grok in wall-clock seconds and FLOPs. Each returns "" where the table has
nothing for it; grokmuon/report.py places them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import metrics, stats
from .arms import PAPER, title
from .phases import PHASES
from .report_tables import (STRATA, holm_note, in_shared_strata, km_median_text, md_table, n_tests, names, num,
                            perm_logrank, perm_text, plateaus, primaries_note, primary_text, span, tests_heading,
                            value_text, versus, within)
from .results import SPECTRUM, condition_axes, scanned_axes


def held_section(done: pd.DataFrame) -> str:
    """Whether grokking held: per task and optimizer, the grokked members' epochs past their grokking epoch
    (metrics.after_grokking), how many regressed, the median share of those epochs below the threshold
    and the lowest val accuracy after it. Only where some member ran past its grokking epoch."""
    if "post_grok_epochs" not in done or not done["post_grok_epochs"].notna().any():
        return ""
    rows, conds = [], condition_axes(done)      # each batch size and width apart: a row of its own
    for (task, *at, opt), g in done[done["grokked"]].groupby(["task", *conds, "optimizer"], dropna=False):
        g = g[g["post_grok_epochs"].notna()]
        if g.empty:
            continue
        rows.append([task, *map(value_text, at), opt, len(g), int(g["post_grok_epochs"].astype(float).median()),
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
        md_table(["task", *conds, "optimizer", "grokked members", "epochs after (median)", "regressed",
                  "share below (median)", "lowest val acc"], rows)])


def phases_section(done: pd.DataFrame, pairs=(PAPER,)) -> str:
    """The phases of grokking from the Fourier probes (phases.py), per task and arm, and each pair on each
    phase epoch. Only where some member has one (a run trained with the Fourier probes)."""
    if not all(c in done for c in PHASES) or not done[list(PHASES)].notna().any().any():
        return ""
    # Each phase epoch's time and event: results.finished (censored at a member's last epoch).
    timed = done[done["task"].isin(done.loc[done[list(PHASES)].notna().any(axis=1), "task"])]
    rows, conds = [], condition_axes(done)      # each batch size and width apart, in the rows and the tests
    for (task, *at, opt), g in timed.groupby(["task", *conds, "optimizer"], dropna=False):
        lead = (g["grokking_epoch"].astype(float) - g["restricted_drop_epoch"].astype(float)).dropna()
        ranks = [pd.to_numeric(g[c], errors="coerce").median() if c in g else None for c in SPECTRUM]
        rows.append([task, *map(value_text, at), opt, len(g), km_median_text(g, "mem_time", "mem_event"),
                     *(f"{km_median_text(g, f'{c}_time', f'{c}_event')} ({int(g[c].notna().sum())})" for c in PHASES),
                     km_median_text(g), num(lead.median() if len(lead) else None, ".0f"),
                     *(num(r, ".2f") for r in ranks)])
    tests, ps = [], []
    for pair in pairs:
        a, b, _ = in_shared_strata(timed, ("task", *conds), pair)
        for c in PHASES:
            t = perm_logrank(a, b, ("task", *conds), f"{c}_time", f"{c}_event")
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
        md_table(["task", *conds, "optimizer", "n", "KM median m", "KM median restricted drop", "KM median excluded rise",
                  "KM median g", "lead (median)", "update rank", "gradient rank"], rows),
        f"\n{first} against {second} on each phase epoch: stratified log-rank z within {within(('task', *conds))} (z < 0: {second} "
        f"sooner), permutation p. The grokking epoch stays the primary test (*{tests_heading(pairs)}*); "
        + holm_note(f"the two phase epochs ({n_tests(ps)})") + "\n",
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
        a, b, _ = in_shared_strata(done, strata, pair)
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
        + holm_note(f"the memorisation epoch and the delay ({n_tests(ps[:, :2])})") + primaries_note(pairs, ps[:, 2]) +
        " **The delay is conditional on having memorised**, and the optimizer itself changes who "
        f"memorises: {within(never)} members never memorised (or diverged) and are not in it, so "
        "a delay difference may reflect which members fit, not how long the same members wait.\n",
        md_table([*(["pair"] if len(pairs) > 1 else []), "quantity", "stratified z", "permutation p", "Holm p"],
                 tests)])


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
    values = sorted(pd.to_numeric(done["patience"], errors="coerce").dropna().astype(int).unique()) \
        if "patience" in done else []
    patience = f" (patience here: {', '.join(map(str, values))})" if values else ""
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
        f"epochs run, and a run stops once every member is `patience` epochs past its first crossing{patience}); "
        "median over the members it finds.\n",
        md_table([*by, "grokked", "median epoch", "near-max: found", "median near-max epoch",
                  "median wall s", "median TFLOP"], rows)])
