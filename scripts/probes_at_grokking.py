"""The probes of every run folder under the given folders at the grokking epoch, as a markdown table
(results/probes/at_grokking.md): per cell, the mean over its members at epoch 1 and at the cell's first
grokking epoch (the earliest member's), then each grokked member at its own grokking epoch.

    .venv/bin/python scripts/probes_at_grokking.py multirun/probes > results/probes/at_grokking.md
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

PROBES = ("norm_attn", "norm_mlp", "spectral_max", "stable_rank_mean", "logit_scale", "softmax_collapse")


def cell_rows(folder: Path) -> tuple[list[list], list[list]]:
    """(the cell's mean rows at epoch 1 and at its first grokking epoch, one row per grokked member)."""
    cfg = json.loads((folder / "config.json").read_text())
    members = json.loads((folder / "summary.json").read_text())["members"]
    m = pd.read_csv(folder / "metrics.csv")
    cell = f"{cfg['task']['name']} {cfg['optimizer']['name']} {cfg['head']['name']}"
    fmt = lambda r: [f"{r[c]:.2f}" for c in PROBES]   # noqa: E731
    grok = {x["member"]: x["grokking_epoch"] for x in members if x.get("grokking_epoch")}
    means = [[cell, "mean at epoch 1", 1, *fmt(m[m["epoch"] == 1][list(PROBES)].mean())]]
    if grok:
        first = min(grok.values())
        means.append([cell, "mean at the first grokking epoch", first, *fmt(m[m["epoch"] == first][list(PROBES)].mean())])
    own = [[cell, f"seed {x['seed']}", grok[x["member"]],
            *fmt(m[(m["member"] == x["member"]) & (m["epoch"] == grok[x["member"]])].iloc[0])]
           for x in members if x["member"] in grok]
    return means, own


def table(dirs: list[str]) -> str:
    folders = sorted({p.parent for d in dirs for p in Path(d).rglob("summary.json")})
    rows = [r for f in folders for part in cell_rows(f) for r in part]
    header = ["cell", "members", "epoch", *PROBES]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows]) + "\n"


if __name__ == "__main__":
    print(f"# Probes at the grokking epoch ({' '.join(sys.argv[1:])})\n")
    print(table(sys.argv[1:]))
