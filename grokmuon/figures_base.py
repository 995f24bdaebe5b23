"""What the figures share: one colour per arm, the arms' labels and order, the panel grid, the budget,
what a pooled figure pooled over, one legend under a figure, and writing a figure as PNG and PDF.
An arm (grokmuon/arms.py: an optimizer and its non-default keys) is what the `optimizer` column holds here
(results.by_arm), each in its own colour (palette), the paper's AdamW and Muon first, in theirs.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .arms import order, title  # noqa: E402
from .results import condition_axes  # noqa: E402

# One colour per arm (the `optimizer` column holds the arm: results.by_arm). The paper's two keep theirs;
# every other arm takes the next of OTHERS in arms.order, so an arm has one colour in every figure of a
# table. Not gray (the legends' neutral swatches) nor red (diverged members' markers).
COLOR = {"adamw": "tab:orange", "muon": "tab:blue"}
OTHERS = ("tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "navy", "goldenrod",
          "teal", "maroon")


def palette(done: pd.DataFrame) -> dict[str, str]:
    """Each arm of the table -> its colour (COLOR for the paper's arms; OTHERS in turn, cycling, for the rest)."""
    rest = [a for a in optimizers(done) if a not in COLOR]
    return {**COLOR, **{a: OTHERS[i % len(OTHERS)] for i, a in enumerate(rest)}}


def label(opt: str) -> str:
    return title(opt)


def optimizers(done: pd.DataFrame) -> list[str]:
    """The table's arms, left to right: the paper's order (AdamW, Muon) first, then the rest sorted."""
    return order(done["optimizer"])


def save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for p in paths:
        # No creation date in the PDF (a PNG holds none): a figure regenerated from the same runs is the same
        # bytes, so `git diff results` after a regeneration shows only what the runs changed.
        meta = {"CreationDate": None} if p.suffix == ".pdf" else None
        fig.savefig(p, dpi=150, bbox_inches="tight", metadata=meta)
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


def _legend_once(fig, axes, ncol: int | None = None) -> int:
    """One legend under the figure for every labelled handle of axes; how many rows it takes."""
    handles = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if not handles:
        return 0
    # one row; two where many arms would make it wider than the figure
    ncol = ncol or (len(handles) if len(handles) <= 7 else -(-len(handles) // 2))
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=ncol,
               frameon=False, bbox_to_anchor=(0.5, -0.02))
    return -(-len(handles) // ncol)


LEGEND_ROW_IN = 0.22        # one legend row at the default font, in inches


def legend_below(fig, axes, bottom: float, ncol: int | None = None, planned_rows: int = 1) -> float:
    """The legend under the figure (_legend_once). Where it takes more rows than the figure's layout
    planned for (many arms), the figure grows by those rows, so they do not cover the axes' labels. The
    bottom of the axes' area for tight_layout, as a fraction of the figure: `bottom` (a fraction of the
    planned height) plus the rows added."""
    rows, h = _legend_once(fig, axes, ncol), fig.get_figheight()
    extra = max(0, rows - planned_rows) * LEGEND_ROW_IN
    if not extra:
        return bottom
    fig.set_figheight(h + extra)
    return (bottom * h + extra) / (h + extra)
