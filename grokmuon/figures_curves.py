"""The figures over training, drawn from each run's metrics.csv (the results table's run_dir column
points to it):

  fig4_curves_task  train and val accuracy over epochs, one colour per arm, per task (and head)
  fig6_probes       weight norm, spectral norm, stable rank, logit scale, softmax collapse against
                    epoch, one colour per arm, per task (runs trained with probes), grokking marked
A metrics.csv damaged since `collect` read it is left out with one line (run_metrics, which figure 7,
figures_phases.py, reads through too).
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import stats  # noqa: E402
from .figures_base import _legend_once, grid, label, legend_below, optimizers, palette, pooled, save  # noqa: E402
from .report_tables import value_text  # noqa: E402
from .results import TableError, best_setting, condition_axes, scanned_axes  # noqa: E402
from .runfolder import METRICS, BadRun, check_metrics  # noqa: E402


def run_metrics(keep: pd.DataFrame, warn):
    """(run_dir, its rows of the table, its metrics.csv) for each run of `keep` in turn. A file corrupted
    or cut short since `collect` read it is left out, with one `warn` line. The train column may be blank
    (eval_train=lazy): collect has checked each run's own rule."""
    for run_dir, rows in keep.groupby("run_dir"):
        try:
            m = check_metrics(Path(run_dir), rows[["member", "epochs_run"]].to_dict("records"), complete=True,
                              blank_ok=("train_acc",))
        except BadRun as err:
            warn(str(err))
            continue
        yield run_dir, rows, m


def read_curves(done: pd.DataFrame, warn) -> pd.DataFrame:
    """Accuracy per epoch of every non-diverged member in the table, from the run folders' metrics.csv.
    A member that stopped early (grokked, then held for `patience` epochs) is held at its last value
    up to the longest run of its cell, so the mean is not taken over a shrinking set."""
    keep, cell = done[~done["diverged"]], curve_cell(done)
    if keep.empty:
        raise TableError("every member of this table diverged: no accuracy curve to draw")
    frames = []
    for run_dir, rows, m in run_metrics(keep, warn):
        m = m[["epoch", "member", "train_acc", "val_acc"]]
        m = m[m["member"].isin(rows["member"])].merge(rows[["member", *cell]], on="member")
        m["run_dir"] = run_dir
        frames.append(m)
    if not frames:
        raise TableError("no metrics.csv could be read for the accuracy curves (see the lines above)")
    curves = pd.concat(frames, ignore_index=True)
    wide = curves.pivot_table(index=[*cell, "run_dir", "member"], columns="epoch",
                              values=["train_acc", "val_acc"])
    return wide


def curve_cell(done: pd.DataFrame) -> list[str]:
    """What one curve averages within: task, head, each condition the table varies, optimizer."""
    return ["task", "head", *condition_axes(done), "optimizer"]


def held(wide: pd.DataFrame, metric: str, key: tuple) -> pd.DataFrame:
    """One cell's members (rows) by epoch (columns), each held at its last value to the cell's last epoch;
    epochs a member skipped (the train split under eval_train=lazy) are drawn straight between its points."""
    raw = wide[metric].xs(key, level=list(wide.index.names[:len(key)]))
    raw = raw.interpolate(method="index", axis=1, limit_area="inside")
    return raw.loc[:, raw.notna().any()].ffill(axis=1)


def at_best_setting(done: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """A scan's members at each cell's best setting of `cols` (earliest Kaplan-Meier median); a cell where
    fewer than half grokked at every setting is left out."""
    keep = [best_setting(cell, cols) for _, cell in done.groupby(curve_cell(done))]
    keep = [b[1] for b in keep if b is not None]
    if not keep:
        raise TableError("no cell of this scan has a setting at which half its members grokked")
    return pd.concat(keep)


def fig4_curves_task(done: pd.DataFrame, out: Path, warn=None) -> list[Path]:
    warn = warn or (lambda msg: print(f"grokmuon: figure 4 skipped {msg}", file=sys.stderr))
    cols = scanned_axes(done)
    if cols:                # a mean over learning rates would be no run's curve: each at its best instead
        done = at_best_setting(done, cols)
    wide = read_curves(done, warn)
    tasks, heads = sorted(done["task"].unique()), sorted(done["head"].unique())
    conds = condition_axes(done)
    log_x = wide.columns.get_level_values("epoch").max() >= 20   # memorising and grokking, decades apart
    if conds:                # a row per task and head, a column per condition (a mean over batch sizes is no run's curve)
        rows = sorted(done.groupby(["task", "head"]).groups)
        combos = sorted(done[conds].drop_duplicates().itertuples(index=False, name=None))
        ncols = len(combos)
        fig, axes = plt.subplots(len(rows), ncols, figsize=(3.0 * ncols, 2.6 * len(rows) + 0.9),
                                 squeeze=False, sharey=True)
        axes = list(axes.flat)
        panels = [(*r, *c) for r in rows for c in combos]
    elif len(heads) == 1:      # one head: the tasks wrap, four to a row, as in figure 3
        ncols = min(len(tasks), 4)
        fig, axes = grid(len(tasks), ncols, h=2.6, sharey=True)
        panels = [(task, heads[0]) for task in tasks]
    else:                    # a row per head, a column per task
        ncols = len(tasks)
        fig, axes = plt.subplots(len(heads), ncols, figsize=(3.0 * ncols, 2.6 * len(heads) + 0.9),
                                 squeeze=False, sharey=True)
        axes = list(axes.flat)
        panels = [(task, head) for head in heads for task in tasks]
    colors = palette(done)
    for i, (ax, panel) in enumerate(zip(axes, panels)):
        task, head, at = panel[0], panel[1], dict(zip(conds, panel[2:]))
        here = done[(done["task"] == task) & (done["head"] == head)]
        for c, v in at.items():
            here = here[here[c] == v]
        for opt in optimizers(done):
            key = (*panel, opt)
            if key not in wide.index.droplevel(["run_dir", "member"]):
                continue
            for metric, style in (("val_acc", "-"), ("train_acc", "--")):
                curves = held(wide, metric, key)
                ep = curves.columns.to_numpy(dtype=float)
                ax.plot(ep, curves.mean(), style, color=colors[opt], lw=1.2,
                        label=f"{label(opt)} {'val' if metric == 'val_acc' else 'train'}")
                if metric == "val_acc":       # one band per optimizer: two are readable, four are not
                    ax.fill_between(ep, curves.min(), curves.max(), color=colors[opt], alpha=0.15, lw=0)
            cell = here[(here["optimizer"] == opt) & here["grokked"]]
            if len(cell):           # each member's grokking epoch, as a tick at the bottom
                ax.plot(cell["grokking_epoch"].astype(float), np.full(len(cell), 0.01), "^", color=colors[opt],
                        ms=4, alpha=0.7, lw=0)
        ax.axhline(0.95, ls=":", lw=0.8, color="gray", zorder=0, label="0.95: the grokking threshold")
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        else:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(", ".join([task if len(heads) == 1 else f"{task}, {head}",
                                *(f"{c} {value_text(v)}" for c, v in at.items())]), fontsize=10)
        if i + ncols >= len(panels):          # nothing below it: the x axis is labelled here
            ax.set_xlabel("epoch", fontsize=9)
        if i % ncols == 0:
            ax.set_ylabel("accuracy")
    fig.suptitle("Accuracy over training: mean over seeds (lines), min–max of val accuracy (band), "
                 "each member's grokking epoch (▲), the 0.95 threshold (dotted)"
                 + (f"\neach optimizer at its best {', '.join(cols)} (earliest Kaplan–Meier median)" if cols else ""),
                 fontsize=12)
    axes[0].plot([], [], "^", color="gray", ms=4, lw=0, label="a member's grokking epoch")
    axes[0].fill_between([], [], [], color="gray", alpha=0.15, lw=0, label="min–max of val accuracy")
    bottom = legend_below(fig, axes, 0.6 / fig.get_figheight(), ncol=4, planned_rows=2)   # the paper's 2 arms: 2 rows
    fig.text(0.5, -0.03, "Members that stopped early (grokked and held) are carried at their last value; "
             "diverged members are left out.", ha="center", va="top", fontsize=8, color="dimgray")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save(fig, out, "fig4_curves_task")


PROBE_PANELS = {"weight_norm": "weight norm", "spectral_max": "max spectral norm (hidden)",
                "stable_rank_mean": "mean stable rank (hidden)", "logit_scale": "logit scale (mean max logit)",
                "softmax_collapse": "softmax collapse (share of train rows)"}


def read_probes(done: pd.DataFrame, warn) -> pd.DataFrame:
    """Long table of the probe columns of every non-diverged member's metrics.csv (runs without probes
    are left out: no probe columns, or empty ones, as a run with probes=false writes them)."""
    keep, frames, unread = done[~done["diverged"]], [], []
    if keep.empty:
        raise TableError("every member of this table diverged: no probe curve to draw")
    for run_dir, rows, m in run_metrics(keep, lambda msg: (warn(msg), unread.append(msg))):
        if not set(PROBE_PANELS) <= set(m.columns) or m[list(PROBE_PANELS)].isna().all().all():
            continue
        m = m[m["member"].isin(rows["member"])].merge(rows[["member", "task", "head", "optimizer"]], on="member")
        frames.append(m[["epoch", "member", "task", "head", "optimizer", *PROBE_PANELS]].assign(run_dir=run_dir))
    if not frames and len(unread) == keep["run_dir"].nunique():
        raise TableError("no metrics.csv could be read for the probe curves (see the lines above)")
    if not frames:
        raise TableError("no run in this table was trained with probes (no metrics.csv has probe values)")
    return pd.concat(frames, ignore_index=True)


def has_probes(done: pd.DataFrame) -> bool:
    """Whether the first run of the table has probe values (figures makes fig6 by default only then): a run
    with probes=false has the columns, empty."""
    try:
        probes = pd.read_csv(Path(done["run_dir"].iloc[0]) / METRICS, usecols=lambda c: c in PROBE_PANELS)
        return set(PROBE_PANELS) <= set(probes.columns) and bool(probes.notna().any().any())
    except (OSError, ValueError, IndexError, KeyError):
        return False


def missing_probes(done: pd.DataFrame, long: pd.DataFrame, heads: bool, shown: int = 6) -> str:
    """A title line naming the cells the probe figure cannot draw (their runs recorded no probes: run before
    the probes were logged, or with probes=false), so a panel with one optimizer is not read as a
    comparison ("" where every cell is drawn)."""
    cell = ["task", "optimizer", "head"]
    drawn = set(long[cell].drop_duplicates().itertuples(index=False, name=None))
    want = done.loc[~done["diverged"], cell].drop_duplicates().itertuples(index=False, name=None)
    missing = sorted(set(want) - drawn)
    if not missing:
        return ""
    names = [f"{task} {label(opt)}" + (f" {head}" if heads else "") for task, opt, head in missing]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"\nnot drawn, no probes recorded: {', '.join(names[:shown])}{more}"


def fig6_probes(done: pd.DataFrame, out: Path, warn=None) -> list[Path]:
    warn = warn or (lambda msg: print(f"grokmuon: figure 6 skipped {msg}", file=sys.stderr))
    long = read_probes(done, warn)
    tasks, heads = sorted(long["task"].unique()), sorted(long["head"].unique())
    styles, colors = dict(zip(heads, ["-", "--", ":"])), palette(done)
    fig, axes = plt.subplots(len(tasks), len(PROBE_PANELS), figsize=(3.0 * len(PROBE_PANELS), 2.5 * len(tasks) + 0.9),
                             squeeze=False)
    for row, task in enumerate(tasks):
        for col, (probe, title) in enumerate(PROBE_PANELS.items()):
            ax = axes[row][col]
            for (opt, head), g in long[long["task"] == task].groupby(["optimizer", "head"]):
                by_epoch = g.groupby("epoch")[probe]
                mean, n = by_epoch.mean(), by_epoch.count()
                # Where some members have stopped (grokked and held), the mean is over fewer of them and
                # jumps as each leaves: drawn faint there, so a jump is not read as the model changing.
                last_full = n.index[n == n.max()].max()
                ax.plot(mean.index[mean.index <= last_full], mean[mean.index <= last_full], styles[head],
                        color=colors[opt], lw=1.2, label=f"{label(opt)}" + (f", {head}" if len(heads) > 1 else ""))
                if last_full < mean.index.max():
                    ax.plot(mean.index[mean.index >= last_full], mean[mean.index >= last_full], styles[head],
                            color=colors[opt], lw=0.8, alpha=0.35, label="faint: some members had stopped")
                cell = done[(done.task == task) & (done.optimizer == opt) & (done["head"] == head)]
                median = stats.km_median(cell["time"], cell["event"]) if len(cell) else None
                if median is not None:      # where half the members had grokked
                    ax.axvline(median, color=colors[opt], ls=styles[head], lw=0.7, alpha=0.6)
            if probe == "logit_scale":          # grows by orders of magnitude; the others stay in one
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
                ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_title(title if row == 0 else "", fontsize=9)
            if col == 0:
                ax.set_ylabel(task)
            if row == len(tasks) - 1:
                ax.set_xlabel("epoch", fontsize=9)
    fig.suptitle(f"Probes over training: mean over members{pooled(done)}; vertical lines: Kaplan–Meier median "
                 "grokking epoch" + missing_probes(done, long, len(heads) > 1), fontsize=11)
    _legend_once(fig, list(axes.flat))
    h = fig.get_figheight()         # in inches: room for the title above and the legend below, however tall
    fig.tight_layout(rect=(0, 0.5 / h, 1, 1 - 0.35 / h))
    return save(fig, out, "fig6_probes")
