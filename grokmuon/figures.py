"""The figures, one function each, reading only the results table (and, for the curves, the metrics.csv
files its run_dir column points to). Each writes <out>/<name>.png and .pdf and returns their paths.

  fig1_boxplot_optimizer  the paper's Fig. 4: grokking epoch by optimizer, pooled over tasks and heads
  fig2_boxplot_task/head  the same, one panel per task / per head
  fig3_km_task            fraction of members grokked by each epoch (Kaplan-Meier), per task
  fig4_curves_task        train and val accuracy over epochs, Muon vs AdamW, per task (and head)
  fig5_scan               grokking epoch against a scanned hyperparameter (experiment=lr_scan), per task
  fig6_probes             weight norm, spectral norm, stable rank, logit scale, softmax collapse against
                          epoch, Muon vs AdamW, per task (runs trained with probes), grokking marked
Members that never grokked are drawn as crosses at the budget (the epoch they were censored), never
dropped: a box over grokked members alone would flatter the optimizer that fails more often.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import stats  # noqa: E402
from .report import value_text  # noqa: E402
from .results import TableError, best_setting, condition_axes, scanned_axes  # noqa: E402
from .runfolder import METRICS, BadRun, check_metrics  # noqa: E402

OPTIMIZERS = ("adamw", "muon")                  # the paper's order, left to right
LABEL = {"adamw": "AdamW", "muon": "Muon"}
COLOR = {"adamw": "tab:orange", "muon": "tab:blue"}


def label(opt: str) -> str:
    return LABEL.get(opt, opt)


def optimizers(done: pd.DataFrame) -> list[str]:
    present = set(done["optimizer"])
    return [o for o in OPTIMIZERS if o in present] + sorted(present - set(OPTIMIZERS))


def save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def grid(n: int, ncols: int, w: float = 3.0, h: float = 2.8, **kw):
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows + 0.6), squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def pooled(done: pd.DataFrame) -> str:
    """What a pooled figure puts together beside tasks and heads: the conditions of the table, if any."""
    conds = condition_axes(done)
    return f", pooled over {' and '.join(conds)}" if conds else ""


def budget(done: pd.DataFrame) -> float:
    return float(done["max_epochs"].max() if "max_epochs" in done else done["time"].max())


@dataclass(frozen=True)
class YLayout:
    """Where the boxplots put things. Members that did not grok sit at the budget; when the budget is
    far above every grokking epoch, a true-scale axis would squash the boxes into its bottom, so they
    go to a row of their own above a dashed break, its tick labelled with the budget."""
    top: float
    no_grok_y: float
    brk: float | None = None

    @classmethod
    def of(cls, done: pd.DataFrame) -> "YLayout":
        b, any_miss = budget(done), bool((~done["grokked"]).any())
        g = float(done.loc[done["grokked"], "grokking_epoch"].max()) if done["grokked"].any() else 0.0
        if any_miss and g > 0 and b > 1.3 * g:
            return cls(top=g * 1.3, no_grok_y=g * 1.2, brk=g * 1.1)
        return cls(top=(b if any_miss else g) * 1.06, no_grok_y=b)


def boxplot(ax, done: pd.DataFrame, rng: np.random.Generator, y: YLayout) -> None:
    """One box per optimizer over grokked members, their points jittered on top; members that did not
    grok as crosses at the budget (see YLayout), diverged ones as red triangles there."""
    opts = optimizers(done)
    for i, opt in enumerate(opts):
        g, color = done[done["optimizer"] == opt], COLOR.get(opt, "gray")
        ep = g.loc[g["grokked"], "grokking_epoch"].astype(float).to_numpy()
        if len(ep):
            ax.boxplot(ep, positions=[i], widths=0.5, showfliers=False, medianprops={"color": "black"},
                       boxprops={"color": color}, whiskerprops={"color": color}, capprops={"color": color})
            x = i + rng.uniform(-0.15, 0.15, len(ep))
            flat = g.loc[g["grokked"], "no_delay"].to_numpy(dtype=bool) if "no_delay" in g else np.zeros(len(ep), bool)
            ax.scatter(x[~flat], ep[~flat], s=8, alpha=0.5, color=color, linewidths=0)
            if flat.any():      # grokked while it memorised (delay 0): learned fast, did not grok late
                ax.scatter(x[flat], ep[flat], s=16, facecolors="none", edgecolors=color, linewidths=0.8)
                ax.scatter([], [], s=16, facecolors="none", edgecolors="black", linewidths=0.8,
                           label="no delay (grokked as it memorised)")
        for rows, style in ((~g["grokked"] & ~g["diverged"], {"marker": "x", "color": "black",
                                                               "label": "did not grok (at the budget)"}),
                            (~g["grokked"] & g["diverged"], {"marker": "v", "color": "tab:red",
                                                             "label": "diverged (drawn at the budget)"})):
            n = int(rows.sum())
            if n:
                ax.scatter(i + rng.uniform(-0.2, 0.2, n), np.full(n, y.no_grok_y), s=18, linewidths=0.8, **style)
    ax.set_xticks(range(len(opts)),
                  [f"{label(o)}\n{int(done.loc[done.optimizer == o, 'grokked'].sum())}/"
                   f"{int((done.optimizer == o).sum())} grokked" for o in opts])
    ax.set_xlim(-0.6, len(opts) - 0.4)
    ax.set_ylim(0, y.top)
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if y.brk is None:
        if y.no_grok_y < y.top:
            ax.axhline(y.no_grok_y, ls=":", lw=0.8, color="gray", zorder=0, label="budget (max_epochs)")
        return
    ax.axhline(y.brk, ls="--", lw=0.8, color="gray", zorder=0)
    ticks = [t for t in ax.get_yticks() if 0 <= t < y.brk * 0.95]
    ax.set_yticks([*ticks, y.no_grok_y], [f"{t:g}" for t in ticks] + [f"budget {budget(done):g}"])


def _legend_once(fig, axes) -> None:
    handles = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), frameon=False,
                   bbox_to_anchor=(0.5, -0.02))


def fig1_boxplot_optimizer(done: pd.DataFrame, out: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    boxplot(ax, done, np.random.default_rng(0), YLayout.of(done))
    ax.set_ylabel("grokking epoch")
    ax.set_title(f"Grokking epoch by optimizer\n(all tasks and heads{pooled(done)})", fontsize=11)
    _legend_once(fig, [ax])
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save(fig, out, "fig1_boxplot_optimizer")


def fig2_boxplot_by(done: pd.DataFrame, out: Path, by: str) -> list[Path]:
    keys = sorted(done[by].unique())
    fig, axes = grid(len(keys), min(len(keys), 4), sharey=True)
    rng, y = np.random.default_rng(0), YLayout.of(done)
    for ax, k in zip(axes, keys):
        boxplot(ax, done[done[by] == k], rng, y)
        ax.set_title(f"{by} = {k}", fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    for ax in axes[:: min(len(keys), 4)]:
        ax.set_ylabel("grokking epoch")
    fig.suptitle(f"Grokking epoch by optimizer, per {by}{pooled(done)}", fontsize=12)
    _legend_once(fig, axes)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, out, f"fig2_boxplot_{by}")


def fig3_km_task(done: pd.DataFrame, out: Path) -> list[Path]:
    panels = [("all tasks", done)] + [(t, g) for t, g in done.groupby("task")]
    fig, axes = grid(len(panels), min(len(panels), 4), sharey=True)
    end = budget(done)
    for ax, (name, g) in zip(axes, panels):
        for opt in optimizers(g):
            m = g[g["optimizer"] == opt]
            t, frac = stats.km_curve(m["time"], m["event"])
            _, low, high = stats.km_band(m["time"], m["event"])
            if len(t):              # the 95% band, then the curve, then a tick where a member was censored
                ax.fill_between(np.r_[t, end], np.r_[low, low[-1]], np.r_[high, high[-1]], step="post",
                                color=COLOR.get(opt), alpha=0.15, lw=0)
            cens = m.loc[~m["event"].astype(bool), "time"].to_numpy(dtype=float)
            if len(cens):
                at = np.array([frac[np.searchsorted(t, c, side="right") - 1] if len(t) and c >= t[0] else 0.0
                               for c in cens])
                ax.plot(cens, at, "|", color=COLOR.get(opt), ms=8, mew=1.2)
            t, frac = np.r_[0.0, t, end], np.r_[0.0, frac, frac[-1] if len(frac) else 0.0]
            ax.step(t, frac, where="post", color=COLOR.get(opt), label=f"{label(opt)}")
        ax.axhline(0.5, ls=":", lw=0.8, color="gray", zorder=0)     # where the KM median is read
        ax.set_title(f"{name} (n={len(g)})", fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(0, end * 1.03)            # room for the censoring ticks at the budget
        ax.set_xlabel("epoch", fontsize=9)
    for ax in axes[:: min(len(panels), 4)]:
        ax.set_ylabel("fraction grokked")
    fig.suptitle(f"Fraction of members grokked by each epoch (Kaplan–Meier, 95% band; | censored){pooled(done)}",
                 fontsize=12)
    _legend_once(fig, axes)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, out, "fig3_km_task")


def read_curves(done: pd.DataFrame, warn) -> pd.DataFrame:
    """Accuracy per epoch of every non-diverged member in the table, from the run folders' metrics.csv.
    A member that stopped early (grokked, then held for `patience` epochs) is held at its last value
    up to the longest run of its cell, so the mean is not taken over a shrinking set."""
    keep, cell = done[~done["diverged"]], curve_cell(done)
    if keep.empty:
        raise TableError("every member of this table diverged: no accuracy curve to draw")
    frames = []
    for run_dir, rows in keep.groupby("run_dir"):
        try:     # a file corrupted or cut short since `collect` read it is left out, with one line
            # The train column may be blank (eval_train=lazy); collect has checked each run's own rule.
            m = check_metrics(Path(run_dir), rows[["member", "epochs_run"]].to_dict("records"), complete=True,
                              blank_ok=("train_acc",))
        except BadRun as err:
            warn(str(err))
            continue
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
                ax.plot(ep, curves.mean(), style, color=COLOR.get(opt), lw=1.2,
                        label=f"{label(opt)} {'val' if metric == 'val_acc' else 'train'}")
                if metric == "val_acc":       # one band per optimizer: two are readable, four are not
                    ax.fill_between(ep, curves.min(), curves.max(), color=COLOR.get(opt), alpha=0.15, lw=0)
            cell = here[(here["optimizer"] == opt) & here["grokked"]]
            if len(cell):           # each member's grokking epoch, as a tick at the bottom
                ax.plot(cell["grokking_epoch"].astype(float), np.full(len(cell), 0.01), "^", color=COLOR.get(opt),
                        ms=4, alpha=0.7, lw=0)
        ax.axhline(0.95, ls=":", lw=0.8, color="gray", zorder=0)        # the grokking threshold
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
    _legend_once(fig, axes)
    fig.text(0.5, -0.02, "Members that stopped early (grokked and held) are carried at their last value; "
             "diverged members are left out.", ha="center", fontsize=8, color="dimgray")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, out, "fig4_curves_task")


def scanned_column(done: pd.DataFrame) -> str | None:
    """The one hyperparameter a scan varied within cells (None when nothing was scanned)."""
    cols = scanned_axes(done)
    if len(cols) > 1:
        raise TableError(f"the scan figure plots one scanned column; this table varies {', '.join(cols)}")
    return cols[0] if cols else None


def fig5_scan(done: pd.DataFrame, out: Path) -> list[Path]:
    col, conds = scanned_column(done), condition_axes(done)
    if col is None and not conds:
        raise TableError("nothing was scanned: no cell has members with different lr, weight decay, "
                         "batch size or width (run experiment=lr_scan)")
    col = col or conds[0]   # no scan: the first condition (the batch size) along x, any other splits the panels
    split = [c for c in conds if c != col]
    panels = [(k, g) for k, g in done.groupby(["task", "head", *split])]
    fig, axes = grid(len(panels), min(len(panels), 3), w=4.0, h=3.2, sharey=True)
    end, rng = budget(done), np.random.default_rng(0)
    for ax, ((task, head, *at), g) in zip(axes, panels):
        for opt in optimizers(g):
            m = g[g["optimizer"] == opt]
            own = np.sort(m[col].unique())          # this optimizer's values; `values` below: the panel's
            color = COLOR.get(opt)
            jitter = np.exp(rng.uniform(-0.06, 0.06, len(m)))        # spread equal points on a log axis
            hit = m["grokked"].to_numpy()
            x = m[col].to_numpy(dtype=float) * jitter
            ax.scatter(x[hit], m.loc[m["grokked"], "grokking_epoch"], s=12, color=color, alpha=0.6, lw=0)
            ax.scatter(x[~hit], np.full((~hit).sum(), end), marker="x", s=18, color=color)
            medians = [stats.km_median(*m.loc[m[col] == v, ["time", "event"]].T.to_numpy()) for v in own]
            ax.plot(own, [end if md is None else md for md in medians], "-o", color=color, ms=4,
                    label=f"{label(opt)}: KM median")
        ax.scatter([], [], marker="x", s=18, color="black", label="did not grok (at the budget)")
        ax.axhline(end, ls=":", lw=0.8, color="gray", label="budget (max_epochs)")
        values = np.unique(g[col].to_numpy(dtype=float))
        if values.min() > 0:
            ax.set_xscale("log")
        else:                       # a scan through 0 (weight decay): log away from 0, linear near it
            ax.set_xscale("symlog", linthresh=values[values > 0].min() if (values > 0).any() else 1.0)
        ax.set_xticks(values, [f"{v:g}" for v in values], fontsize=8,      # a tick at each scanned value
                      rotation=45 if len(values) > 4 else 0, ha="right" if len(values) > 4 else "center")
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel(col)
        ax.set_ylim(0, end * 1.05)
        ax.set_title(", ".join([task, head, *(f"{c} {value_text(v)}" for c, v in zip(split, at))]), fontsize=10)
    for ax in axes[:: min(len(panels), 3)]:
        ax.set_ylabel("grokking epoch")
    fig.suptitle(f"Grokking epoch against {col}\n(dots: members; line: Kaplan–Meier median, "
                 "at the budget where fewer than half grokked)", fontsize=10)
    _legend_once(fig, axes)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save(fig, out, "fig5_scan")


PROBE_PANELS = {"weight_norm": "weight norm", "spectral_max": "max spectral norm (hidden)",
                "stable_rank_mean": "mean stable rank (hidden)", "logit_scale": "logit scale (mean max logit)",
                "softmax_collapse": "softmax collapse (share of train rows)"}


def read_probes(done: pd.DataFrame, warn) -> pd.DataFrame:
    """Long table of the probe columns of every non-diverged member's metrics.csv (runs without probes
    are left out)."""
    keep, frames, unread = done[~done["diverged"]], [], 0
    if keep.empty:
        raise TableError("every member of this table diverged: no probe curve to draw")
    for run_dir, rows in keep.groupby("run_dir"):
        try:
            m = check_metrics(Path(run_dir), rows[["member", "epochs_run"]].to_dict("records"), complete=True,
                              blank_ok=("train_acc",))
        except BadRun as err:
            warn(str(err))
            unread += 1
            continue
        if not set(PROBE_PANELS) <= set(m.columns):
            continue
        m = m[m["member"].isin(rows["member"])].merge(rows[["member", "task", "head", "optimizer"]], on="member")
        frames.append(m[["epoch", "member", "task", "head", "optimizer", *PROBE_PANELS]].assign(run_dir=run_dir))
    if not frames and unread == keep["run_dir"].nunique():
        raise TableError("no metrics.csv could be read for the probe curves (see the lines above)")
    if not frames:
        raise TableError("no run in this table was trained with probes (metrics.csv has no probe columns)")
    return pd.concat(frames, ignore_index=True)


def has_probes(done: pd.DataFrame) -> bool:
    """Whether the first run of the table has probe columns (figures makes fig6 by default only then)."""
    try:
        first = Path(done["run_dir"].iloc[0]) / METRICS
        return set(PROBE_PANELS) <= set(pd.read_csv(first, nrows=0).columns)
    except (OSError, ValueError, IndexError, KeyError):
        return False


def fig6_probes(done: pd.DataFrame, out: Path, warn=None) -> list[Path]:
    warn = warn or (lambda msg: print(f"grokmuon: figure 6 skipped {msg}", file=sys.stderr))
    long = read_probes(done, warn)
    tasks, heads = sorted(long["task"].unique()), sorted(long["head"].unique())
    styles = dict(zip(heads, ["-", "--", ":"]))
    fig, axes = plt.subplots(len(tasks), len(PROBE_PANELS), figsize=(3.0 * len(PROBE_PANELS), 2.5 * len(tasks) + 0.9),
                             squeeze=False)
    for row, task in enumerate(tasks):
        for col, (probe, title) in enumerate(PROBE_PANELS.items()):
            ax = axes[row][col]
            for (opt, head), g in long[long["task"] == task].groupby(["optimizer", "head"]):
                mean = g.groupby("epoch")[probe].mean()
                ax.plot(mean.index, mean.values, styles[head], color=COLOR.get(opt), lw=1.2,
                        label=f"{label(opt)}" + (f", {head}" if len(heads) > 1 else ""))
                cell = done[(done.task == task) & (done.optimizer == opt) & (done["head"] == head)]
                median = stats.km_median(cell["time"], cell["event"]) if len(cell) else None
                if median is not None:      # where half the members had grokked
                    ax.axvline(median, color=COLOR.get(opt), ls=styles[head], lw=0.7, alpha=0.6)
            if probe == "logit_scale":          # grows by orders of magnitude; the others stay in one
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
                ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_title(title if row == 0 else "", fontsize=9)
            if col == 0:
                ax.set_ylabel(task)
            if row == len(tasks) - 1:
                ax.set_xlabel("epoch", fontsize=9)
    fig.suptitle("Probes over training: mean over members; vertical lines: Kaplan–Meier median grokking epoch",
                 fontsize=11)
    _legend_once(fig, list(axes.flat))
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, out, "fig6_probes")


FIGURES = {
    "boxplot": lambda d, o: fig1_boxplot_optimizer(d, o),
    "boxplot_task": lambda d, o: fig2_boxplot_by(d, o, "task"),
    "boxplot_head": lambda d, o: fig2_boxplot_by(d, o, "head"),
    "km": fig3_km_task,
    "curves": fig4_curves_task,
    "scan": fig5_scan,      # made by default only when the table is a scan (figures_cmd)
    "probes": fig6_probes,  # made by default only when its runs were trained with probes
}
