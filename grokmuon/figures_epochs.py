"""The figures of the grokking epochs, drawn from the results table alone (runs.csv):

  fig1_boxplot_optimizer  the paper's Fig. 4: grokking epoch by optimizer, pooled over tasks and heads
  fig2_boxplot_task/head  the same, one panel per task / per head
  fig3_km_task            fraction of members grokked by each epoch (Kaplan-Meier), per task
  fig5_scan               grokking epoch against a scanned hyperparameter (experiment=lr_scan), per task
Members that never grokked are drawn as crosses at the budget (the epoch they were censored), never
dropped, and the boxes are drawn over every member (those at the budget): a box over grokked members
alone would flatter the optimizer that fails more often. fig1 keeps that box (the paper's) as its third,
labelled panel, beside the Kaplan-Meier median with its CI. A panel that sets arms side by side draws
the members of the strata every arm holds, as the report compares them (compared); the title says what
was left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import stats  # noqa: E402
from .figures_base import _legend_once, budget, grid, label, legend_below, optimizers, palette, pooled, save  # noqa: E402
from .report_tables import shared_strata, strata_of, value_text  # noqa: E402
from .results import TableError, condition_axes, scanned_axes  # noqa: E402


@dataclass(frozen=True)
class YLayout:
    """The boxplots' y axis. Members that did not grok are drawn at the budget; when the budget is far
    above every grokking epoch, a true-scale axis would squash the boxes into its bottom, so the axis is
    compressed above a dashed break (`brk`): true scale below it, the stretch from it to the budget
    squeezed into a narrow band, the budget's tick labelled. Every value is drawn at its true epoch."""
    top: float
    budget: float
    brk: float | None = None
    squeeze: float = 1.0

    @classmethod
    def of(cls, done: pd.DataFrame) -> "YLayout":
        b, any_miss = budget(done), bool((~done["grokked"]).any())
        g = float(done.loc[done["grokked"], "grokking_epoch"].max()) if done["grokked"].any() else 0.0
        if any_miss and g > 0 and b > 1.3 * g:      # the budget lands at 1.2 g on screen, the top at 1.3 g
            brk = 1.1 * g
            squeeze = 0.1 * g / (b - brk)
            return cls(top=b + 0.1 * g / squeeze, budget=b, brk=brk, squeeze=squeeze)
        return cls(top=(b if any_miss else g) * 1.06, budget=b)

    def forward(self, y):
        y = np.asarray(y, dtype=float)
        return np.where(y <= self.brk, y, self.brk + (y - self.brk) * self.squeeze)

    def inverse(self, v):
        v = np.asarray(v, dtype=float)
        return np.where(v <= self.brk, v, self.brk + (v - self.brk) / self.squeeze)

    def apply(self, ax) -> None:
        if self.brk is None:
            ax.set_ylim(0, self.top)
            ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            if self.budget < self.top:
                ax.axhline(self.budget, ls=":", lw=0.8, color="gray", zorder=0, label="budget (max_epochs)")
            return
        ax.set_yscale("function", functions=(self.forward, self.inverse))
        ax.set_ylim(0, self.top)
        ax.axhline(self.brk, ls="--", lw=0.8, color="gray", zorder=0, label="axis break: compressed above")
        ticks = [t for t in matplotlib.ticker.MaxNLocator(integer=True).tick_values(0, self.brk)
                 if 0 <= t < self.brk * 0.95]
        ax.set_yticks([*ticks, self.budget], [f"{t:g}" for t in ticks] + [f"budget {self.budget:g}"])
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def box_values(g: pd.DataFrame, box: str) -> np.ndarray:
    """What one box is drawn over. "all": every member, at its grokking epoch or, if it did not grok, at
    the epoch it was censored (the budget; a diverged member too), so with censoring at the budget only,
    the box's median is the Kaplan-Meier median (the budget where half or more did not grok; for an even
    count, the mean of the middle pair where Kaplan-Meier takes the lower one). "grokked":
    the grokked members only, as the paper draws it, which leaves out the members that did not grok."""
    return (g["time"] if box == "all" else g.loc[g["grokked"], "grokking_epoch"]).astype(float).to_numpy()


def tick_labels(done: pd.DataFrame, opts: list[str]) -> list[str]:
    """An arm's name, one key a line ("Muon\nmomentum=0"), over its count of grokked members."""
    return [f"{label(o).replace(' ', chr(10))}\n{int(done.loc[done.optimizer == o, 'grokked'].sum())}/"
            f"{int((done.optimizer == o).sum())} grokked" for o in opts]


def boxplot(ax, done: pd.DataFrame, rng: np.random.Generator, y: YLayout, box: str = "all",
            colors: dict | None = None) -> dict:
    """One box per optimizer over box_values(box), the grokked members as jittered points on top
    (hollow: no delay); the members that did not grok as one cross at the epoch they were censored
    (the budget) with their count beside it, diverged ones as a red triangle there with theirs.
    Returns each optimizer's box median (None: no box)."""
    opts, medians, colors = optimizers(done), {}, colors or palette(done)
    for i, opt in enumerate(opts):
        g, color = done[done["optimizer"] == opt], colors[opt]
        values = box_values(g, box)
        medians[opt] = float(np.median(values)) if len(values) else None
        if len(values):
            ax.boxplot(values, positions=[i], widths=0.5, showfliers=False, medianprops={"color": "black"},
                       boxprops={"color": color}, whiskerprops={"color": color}, capprops={"color": color})
        ep = g.loc[g["grokked"], "grokking_epoch"].astype(float).to_numpy()
        x = i + rng.uniform(-0.15, 0.15, len(ep))
        flat = g.loc[g["grokked"], "no_delay"].to_numpy(dtype=bool) if "no_delay" in g else np.zeros(len(ep), bool)
        ax.scatter(x[~flat], ep[~flat], s=8, alpha=0.5, color=color, linewidths=0)
        ax.scatter(x[flat], ep[flat], s=16, facecolors="none", edgecolors=color, linewidths=0.8)
        missed = [(rows, style) for rows, style in
                  ((~g["grokked"] & ~g["diverged"], {"marker": "x", "color": "black"}),
                   (~g["grokked"] & g["diverged"], {"marker": "v", "color": "tab:red"})) if rows.any()]
        for k, (rows, style) in enumerate(missed):
            at = i + (0.16 * (2 * k - 1) if len(missed) == 2 else 0.0)
            for where, n in g.loc[rows, "time"].astype(float).value_counts().sort_index().items():
                ax.scatter([at], [where], s=36, linewidths=1.2, zorder=3, **style)
                ax.annotate(f"{n}", (at, where), xytext=(5, -1), textcoords="offset points", va="center",
                            fontsize=7, color=style["color"])
    marks(ax, done)
    ax.set_xticks(range(len(opts)), tick_labels(done, opts), **tick_size(opts))
    ax.set_xlim(-0.6, len(opts) - 0.4)
    y.apply(ax)
    return medians


def marks(ax, done: pd.DataFrame) -> None:
    """Legend entries for the markers the table has (gray: each optimizer draws them in its colour)."""
    ax.scatter([], [], s=12, color="gray", alpha=0.7, linewidths=0, label="grokked (one member)")
    if "no_delay" in done and done["no_delay"].any():
        ax.scatter([], [], s=16, facecolors="none", edgecolors="gray", linewidths=0.8,
                   label="grokked as it memorised (no delay)")
    if (~done["grokked"] & ~done["diverged"]).any():
        ax.scatter([], [], marker="x", s=36, color="black", linewidths=1.2,
                   label="did not grok: drawn at the budget, their count beside it")
    if done["diverged"].any():
        ax.scatter([], [], marker="v", s=36, color="tab:red", linewidths=1.2,
                   label="diverged: drawn at the budget, their count beside it")


def km_medians(ax, done: pd.DataFrame, y: YLayout, colors: dict | None = None) -> None:
    """Each optimizer's Kaplan-Meier median grokking epoch (every member counted, censoring included)
    with its 95% CI. A median or CI end that the data never reach is drawn as an arrow: at the budget
    when members ran to it; where every member grokked, a CI end the data leave open (too few members to
    bound it) as a hollow arrow at the last grokking epoch, "> that epoch", not "beyond the budget"."""
    opts, beyond_drawn, open_drawn, colors = optimizers(done), False, False, colors or palette(done)
    compact = len(opts) > 2
    for i, opt in enumerate(opts):
        g, color = done[done["optimizer"] == opt], colors[opt]
        med = stats.km_median(g["time"], g["event"])
        low, high = stats.km_median_ci(g["time"], g["event"])
        beyond = y.top * 0.995        # drawn at the top of the axis, above the budget: "later than that"
        last = float(g["time"].max())
        # every member grokked, before the budget: the data end there, and so does what they can bound
        open_end = high is None and med is not None and bool(g["event"].all()) and last < y.budget
        top = last if open_end else beyond if high is None else high
        bottom = low if low is not None else last if open_end else y.budget
        ax.vlines(i, bottom, top, color=color, lw=2)
        ax.hlines([v for v in (low, high) if v is not None], i - 0.08, i + 0.08, color=color, lw=2)
        if open_end:
            ax.scatter([i], [last], marker="^", s=50, facecolors="white", edgecolors=color, zorder=3)
            open_drawn = True
        elif high is None or med is None:
            ax.scatter([i], [beyond], marker="^", s=50, color=color, zorder=3, clip_on=False)
            beyond_drawn = True
        if med is not None:
            ax.scatter([i], [med], marker="D", s=40, color=color, edgecolors="black", zorder=4)
        end = f"{high:g}" if high is not None else f">{last:g}" if open_end else f">{y.budget:g}"
        if compact:             # many arms: the numbers alone, so that they fit between two arms
            text = (f"{med:g}" if med is not None else f">{y.budget:g}") + \
                f"\n[{'–' if low is None else f'{low:g}'}, {end}]"
        else:
            text = (f"median {med:g}" if med is not None else "median beyond the budget") + \
                f"\n95% CI {'–' if low is None else f'{low:g}'} to " + \
                (f"{high:g}" if high is not None else f"beyond {last:g}" if open_end else "beyond the budget")
        ax.annotate(text, (i, med if med is not None else beyond), xytext=(10, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.scatter([], [], marker="D", s=40, color="gray", edgecolors="black",
               label="Kaplan–Meier median, bar: its 95% CI" + (" (numbers: median [CI])" if compact else ""))
    if beyond_drawn:
        ax.scatter([], [], marker="^", s=50, color="gray", label="median or CI end beyond the budget")
    if open_drawn:
        ax.scatter([], [], marker="^", s=50, facecolors="white", edgecolors="gray",
                   label="CI end open past the last grokking epoch (too few members to bound it)")
    ax.set_xticks(range(len(opts)), tick_labels(done, opts), **tick_size(opts))
    ax.set_xlim(-0.6, len(opts) - 0.4 + 0.5)       # room for the numbers right of the last optimizer
    y.apply(ax)


def compared(done: pd.DataFrame, panels: list[pd.DataFrame] | None = None) -> tuple[list[pd.DataFrame], str]:
    """Each panel (default: one, the whole table) cut to the strata (task, head, the table's conditions)
    every arm of that panel holds (report_tables.shared_strata; a panel of one arm whole), so its boxes
    and curves set against each other what the report's tests compare, not one arm's extra condition
    against the others'; and a line saying what was left out ("" where nothing was)."""
    strata, panels = strata_of(done), [done] if panels is None else panels
    cut = [shared_strata(g, strata) for g in panels]
    alone = sorted({s for _, left in cut for s in left})
    if not alone:
        return [g for g, _ in cut], ""
    n = len(set().union(*(set(g.index) - set(kept.index) for g, (kept, _) in zip(panels, cut))))
    shown = ", ".join(alone[:4]) + (f" and {len(alone) - 4} more" if len(alone) > 4 else "")
    return [g for g, _ in cut], (f"\nwhere arms are side by side, left out: {n} members in strata "
                                 f"({'/'.join(strata)}) not every arm holds: {shown}")


def tick_size(opts: list[str]) -> dict:
    """Smaller tick labels past the paper's two arms, so an arm's keys fit under its box."""
    return {} if len(opts) <= 2 else {"fontsize": 8}


def fig1_boxplot_optimizer(done: pd.DataFrame, out: Path) -> list[Path]:
    """The paper's Fig. 4, told straight: a box over every member (those that did not grok at the budget),
    the Kaplan-Meier median with its CI, and the paper's own box over the grokked members only, each
    labelled, on one shared axis."""
    [done], left = compared(done)
    y = YLayout.of(done)
    wider = 2.8 * max(0, len(optimizers(done)) - 2)         # room for each arm past the paper's two
    fig, axes = plt.subplots(1, 3, figsize=(12.5 + wider, 4.8), sharey=True)
    boxplot(axes[0], done, np.random.default_rng(0), y, box="all")
    axes[0].set_title("every member: its grokking epoch,\nor the budget if it did not grok", fontsize=10)
    km_medians(axes[1], done, y)
    axes[1].set_title("Kaplan–Meier median grokking epoch\n(every member, censoring counted)", fontsize=10)
    boxplot(axes[2], done, np.random.default_rng(0), y, box="grokked")
    axes[2].set_title("the paper's style: box over grokked members\nonly (it leaves out every ×)", fontsize=10)
    axes[0].set_ylabel("grokking epoch")
    fig.suptitle(f"Grokking epoch by optimizer (all tasks and heads{pooled(done)}){left}", fontsize=12)
    _legend_once(fig, axes, ncol=3)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return save(fig, out, "fig1_boxplot_optimizer")


def fig2_boxplot_by(done: pd.DataFrame, out: Path, by: str) -> list[Path]:
    keys = sorted(done[by].unique())
    panels, left = compared(done, [done[done[by] == k] for k in keys])
    fig, axes = grid(len(keys), min(len(keys), 4), w=3.0 + 1.0 * max(0, len(optimizers(done)) - 2), sharey=True)
    fig.set_figheight(fig.get_figheight() + 0.2)        # room for the legend's two rows below
    drawn = pd.concat(panels)
    rng, y, colors = np.random.default_rng(0), YLayout.of(drawn), palette(done)
    for ax, k, g in zip(axes, keys, panels):
        boxplot(ax, g, rng, y, box="all", colors=colors)
        ax.set_title(f"{by} = {k}", fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    for ax in axes[:: min(len(keys), 4)]:
        ax.set_ylabel("grokking epoch")
    fig.suptitle(f"Grokking epoch by optimizer, per {by}{pooled(drawn)}\n(box over every member: its "
                 f"grokking epoch, or the budget if it did not grok){left}", fontsize=12)
    _legend_once(fig, axes, ncol=3)
    fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))
    return save(fig, out, f"fig2_boxplot_{by}")


KM_MARGIN = 1.15    # past the last grokking epoch where every member grokked: room to see the curves level off


def km_end(done: pd.DataFrame) -> float:
    """Where the Kaplan-Meier panels end: the budget where any member was censored (its tick is drawn
    there), else KM_MARGIN past the last grokking epoch (at least 1): with every member grokked by epoch
    60, a 300-epoch axis would squeeze every curve into its first fifth."""
    if done.empty:
        return 1.0
    if not done["event"].astype(bool).all():
        return budget(done)
    return min(budget(done), max(1.0, float(np.ceil(done["time"].max() * KM_MARGIN))))


def fig3_km_task(done: pd.DataFrame, out: Path) -> list[Path]:
    names = ["all tasks", *sorted(done["task"].unique())]
    cut, left = compared(done, [done] + [done[done["task"] == t] for t in names[1:]])
    panels = list(zip(names, cut))
    fig, axes = grid(len(panels), min(len(panels), 4), sharey=True)
    drawn = pd.concat(cut)
    end, colors = km_end(drawn), palette(done)
    for ax, (name, g) in zip(axes, panels):
        for opt in optimizers(g):
            m = g[g["optimizer"] == opt]
            t, frac = stats.km_curve(m["time"], m["event"])
            _, low, high = stats.km_band(m["time"], m["event"])
            if len(t):              # the 95% band, then the curve, then a tick where a member was censored
                ax.fill_between(np.r_[t, end], np.r_[low, low[-1]], np.r_[high, high[-1]], step="post",
                                color=colors[opt], alpha=0.15, lw=0)
            cens = m.loc[~m["event"].astype(bool), "time"].to_numpy(dtype=float)
            if len(cens):
                at = np.array([frac[np.searchsorted(t, c, side="right") - 1] if len(t) and c >= t[0] else 0.0
                               for c in cens])
                ax.plot(cens, at, "|", color=colors[opt], ms=8, mew=1.2)
            t, frac = np.r_[0.0, t, end], np.r_[0.0, frac, frac[-1] if len(frac) else 0.0]
            ax.step(t, frac, where="post", color=colors[opt], label=f"{label(opt)}")
        ax.axhline(0.5, ls=":", lw=0.8, color="gray", zorder=0, label="one half: the median is read here")
        ax.set_title(f"{name} (n={len(g)})", fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(0, end * 1.03)            # room for the censoring ticks at the budget (km_end)
        ax.set_xlabel("epoch", fontsize=9)
    axes[0].plot([], [], "|", color="gray", ms=8, mew=1.2, label="censored: did not grok by then")
    axes[0].fill_between([], [], [], color="gray", alpha=0.15, lw=0, label="95% band")
    for ax in axes[:: min(len(panels), 4)]:
        ax.set_ylabel("fraction grokked")
    fig.suptitle(f"Fraction of members grokked by each epoch (Kaplan–Meier, 95% band; | censored)"
                 f"{pooled(drawn)}{left}", fontsize=12)
    fig.tight_layout(rect=(0, legend_below(fig, axes, 0.04), 1, 1))
    return save(fig, out, "fig3_km_task")


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
    end, rng, colors = budget(done), np.random.default_rng(0), palette(done)
    for ax, ((task, head, *at), g) in zip(axes, panels):
        for opt in optimizers(g):
            m = g[g["optimizer"] == opt]
            own = np.sort(m[col].unique())          # this optimizer's values; `values` below: the panel's
            color = colors[opt]
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
