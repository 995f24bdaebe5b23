"""Figure 7, the phases of grokking (runs trained with the Fourier probes, experiment=mechanism): one
figure per task, fig7_phases_<task>.png/.pdf, a column per measure, every optimizer on the same epochs.

  accuracy         train (dashed) and val (solid) accuracy
  restricted loss  the training loss from the key frequencies alone (fourier.py): falls as the circuit forms
  excluded loss    the training loss with the key frequencies removed: rises as the fit comes to rest on them
  Fourier Gini     how concentrated the number embedding is on a few frequencies (0: spread, 1: one)
  stable rank      of the update a step applied (solid) and of its gradient (dashed), hidden matrices
  after grokking   val accuracy against epochs since each member's own grokking epoch: whether it held

Lines are the median over members, bands the 25-75% range (the lowest value, for val accuracy after
grokking: a single member's loss of generalisation shows). Vertical lines mark each optimizer's
Kaplan-Meier median memorisation epoch (dotted), phase epoch of the panel's curve (dash-dot; phases.py)
and grokking epoch (solid), the medians report.md gives (a member without the epoch is censored). Where some members have stopped (grokked and held for
`patience` epochs), the median is over fewer of them: drawn faint there, as in figure 6.
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd

from . import fourier, stats
from .figures_base import label, legend_below, optimizers, palette, pooled, save
from .figures_curves import run_metrics
from .results import TableError
from .runfolder import METRICS

PANELS = {"acc": "accuracy", "restricted_loss": "restricted loss (key frequencies only)",
          "excluded_loss": "excluded loss (key frequencies removed)", "fourier_gini": "Fourier Gini of the embedding",
          "update_stable_rank": "stable rank of the update (hidden)", "after": "val accuracy after grokking"}
PHASE_OF = {"restricted_loss": "restricted_drop_epoch", "excluded_loss": "excluded_rise_epoch"}
FOURIER = ("fourier_gini", "restricted_loss", "excluded_loss")
RANKS = ("update_stable_rank", "grad_stable_rank")


def has_fourier(done: pd.DataFrame) -> bool:
    """Whether the table's first run on a task the Fourier probes apply to has their values (figures makes
    fig7 by default only then): a run without the probes, or on gcd, modexp or parity, has blank columns."""
    try:
        runs = done.loc[done["task"].map(fourier.applies), "run_dir"]
        if runs.empty:
            return False
        return probed(pd.read_csv(Path(runs.iloc[0]) / METRICS))
    except (OSError, ValueError, IndexError, KeyError):
        return False


def probed(m: pd.DataFrame) -> bool:
    """Whether a metrics.csv has the Fourier probes' values (blank: trained without them, or on a task they
    are not defined for)."""
    return set(FOURIER) <= set(m.columns) and bool(m[list(FOURIER)].notna().any().any())


def read_phases(done: pd.DataFrame, warn) -> pd.DataFrame:
    """Long table (epoch, member row) of accuracy and the Fourier columns of every non-diverged member
    whose run has them; the grokking epoch joined on, for the after-grokking panel."""
    keep, frames = done[~done["diverged"]], []
    for run_dir, rows, m in run_metrics(keep, warn):
        if not probed(m):
            continue
        m = m[m["member"].isin(rows["member"])].merge(
            rows[["member", "task", "optimizer", "grokking_epoch"]], on="member")
        for col in RANKS:           # runs made before probes.UpdateWatch have no such column
            m[col] = m[col] if col in m else float("nan")
        frames.append(m[["epoch", "member", "task", "optimizer", "grokking_epoch", "train_acc", "val_acc",
                         *FOURIER, *RANKS]].assign(run_dir=run_dir))
    if not frames:
        raise TableError("no run in this table was trained with the Fourier probes (experiment=mechanism; "
                         "modadd, modsub, modmul, moddiv)")
    return pd.concat(frames, ignore_index=True)


def _band(ax, g: pd.DataFrame, x: str, col: str, color, style: str = "-", low: str = "q25", lbl=None) -> None:
    """Median of col over members against x, with its band; faint where some members had stopped."""
    g = g.dropna(subset=[col])
    if g.empty:
        return
    by = g.groupby(x)[col]
    med, n = by.median(), by.count()
    lo = by.min() if low == "min" else by.quantile(0.25)
    hi = by.quantile(0.75)
    full = n.index[n == n.max()].max()
    ax.plot(med.index[med.index <= full], med[med.index <= full], style, color=color, lw=1.2, label=lbl)
    if full < med.index.max():
        ax.plot(med.index[med.index >= full], med[med.index >= full], style, color=color, lw=0.8, alpha=0.35)
    ax.fill_between(lo.index, lo, hi, color=color, alpha=0.15, lw=0)


def markers(cell: pd.DataFrame) -> dict[str, float | None]:
    """The epochs figure 7 marks for one arm's members (results.finished's columns): the Kaplan-Meier
    median memorisation, grokking and phase epoch of each phase panel's curve, as report.md gives them (a
    member without the epoch is censored), so a marker does not sit early for leaving the slow ones out."""
    return {"memorisation": stats.km_median(cell["mem_time"], cell["mem_event"]),
            "grokking": stats.km_median(cell["time"], cell["event"]),
            **{panel: stats.km_median(cell[f"{col}_time"], cell[f"{col}_event"]) for panel, col in PHASE_OF.items()}}


def fig7_phases(done: pd.DataFrame, out: Path, warn=None) -> list[Path]:
    warn = warn or (lambda msg: print(f"grokmuon: figure 7 skipped {msg}", file=sys.stderr))
    long = read_phases(done, warn)
    paths, colors = [], palette(done)
    for task in sorted(long["task"].unique()):
        here, cells = long[long["task"] == task], done[done["task"] == task]
        fig, axes = plt.subplots(1, len(PANELS), figsize=(3.0 * len(PANELS), 3.6), squeeze=False)
        axes = list(axes.flat)
        for opt in optimizers(cells):
            g, cell, color = here[here["optimizer"] == opt], cells[cells["optimizer"] == opt], colors[opt]
            if g.empty:
                continue
            marks = markers(cell)
            grok, mem = marks["grokking"], marks["memorisation"]
            for ax, panel in zip(axes, PANELS):
                if panel == "acc":
                    _band(ax, g, "epoch", "val_acc", color, "-", lbl=f"{label(opt)} (n={len(cell)})")
                    _band(ax, g, "epoch", "train_acc", color, "--")
                elif panel == "after":
                    after = g.dropna(subset=["grokking_epoch"]).assign(
                        since=lambda d: d["epoch"] - d["grokking_epoch"].astype(float))
                    _band(ax, after[after["since"] >= -20], "since", "val_acc", color, low="min")
                    continue
                elif panel == "update_stable_rank":   # the update (solid) and the gradient it came from (dashed)
                    _band(ax, g, "epoch", "update_stable_rank", color)
                    _band(ax, g, "epoch", "grad_stable_rank", color, "--")
                else:
                    _band(ax, g, "epoch", panel, color)
                    if panel in PHASE_OF and (ph := marks[panel]) is not None:
                        ax.axvline(ph, color=color, ls="-.", lw=0.9, alpha=0.8)
                if mem is not None:
                    ax.axvline(mem, color=color, ls=":", lw=0.8, alpha=0.8)
                if grok is not None:
                    ax.axvline(grok, color=color, ls="-", lw=0.8, alpha=0.6)
        for ax, (panel, title) in zip(axes, PANELS.items()):
            empty = not ax.lines
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("epochs since grokking" if panel == "after" else "epoch", fontsize=9)
            if panel in ("acc", "after"):
                ax.axhline(0.95, ls=":", lw=0.8, color="gray", zorder=0)
                ax.set_ylim(-0.02, 1.02)
            if panel == "restricted_loss":      # falls by orders of magnitude; the excluded loss stays within one
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            if panel == "after" and empty:
                ax.text(0.5, 0.5, "no member grokked", ha="center", va="center", transform=ax.transAxes,
                        fontsize=9, color="dimgray")
        axes[0].plot([], [], "--", color="gray", lw=1.2, label="dashed: train accuracy; the gradient's stable rank")
        axes[0].plot([], [], ":", color="gray", lw=0.8, label="Kaplan–Meier median memorisation epoch")
        axes[0].plot([], [], "-.", color="gray", lw=0.9, label="Kaplan–Meier median phase epoch (restricted drop, excluded rise)")
        axes[0].plot([], [], "-", color="gray", lw=0.8, label="Kaplan–Meier median grokking epoch")
        axes[0].fill_between([], [], [], color="gray", alpha=0.15, lw=0, label="25–75% of members (after grokking: lowest–75%)")
        fig.suptitle(f"{task}: the phases of grokking, median over members{pooled(done)}", fontsize=11)
        bottom = legend_below(fig, axes, 0.75 / fig.get_figheight(), ncol=3, planned_rows=3)   # 2 arms: 3 rows
        fig.tight_layout(rect=(0, bottom, 1, 1))
        paths += save(fig, out, f"fig7_phases_{task}")
    return paths

