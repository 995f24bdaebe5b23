"""Synthetic run folders in runfolder.py's format (config.json, metrics.csv, summary.json), for the tests of
collect, report and figures: no training, any outcome we want, in milliseconds."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from grokmuon.runid import cell_name, config_hash, member_hash

FIELDS = ["epoch", "member", "seed", "train_acc", "val_acc", "train_loss", "val_loss", "wall_s"]
PROBES = ["weight_norm", "norm_embed", "norm_attn", "norm_mlp", "norm_head", "spectral_max", "stable_rank_mean",
          "logit_scale", "softmax_collapse", "lr_factor"]


def config(task="modadd", optimizer="muon", head="softmax", seeds=(0, 1), max_epochs=300, **over) -> dict:
    cfg = {"task": {"name": task, "p": 97, "train_frac": 0.5, "n_bits": 10},
           "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_mlp": 64, "dropout": 0.1, "rope_base": 1e4},
           "head": {"name": head},
           "optimizer": {"name": optimizer, "lr": 0.02 if optimizer == "muon" else 1e-3,
                         "weight_decay": 0.05 if optimizer == "muon" else 1.0, "adamw_lr": 1e-3,
                         "adamw_weight_decay": 1.0},
           "logger": {"name": "none"}, "seeds": list(seeds), "batch_size": 512, "max_epochs": max_epochs,
           "patience": 10, "grok_val_acc": 0.95, "grok_train_acc": 0.99, "device": "cpu",
           "precision": "fp32", "eval_chunk": 8192, "progress": False, "experiment": "synthetic"}
    cfg.update(over)
    return cfg


def curve(n: int, grok: int | None, memo: int) -> tuple[np.ndarray, np.ndarray]:
    """Train accuracy that saturates by `memo`, val accuracy that jumps at `grok` (or never)."""
    e = np.arange(1, n + 1)
    train = np.clip(e / memo, 0, 1) * 0.995 + 0.005 * (e >= memo)
    val = 0.02 + 0.4 * np.clip(e / (2 * memo), 0, 1)
    if grok is not None:
        val = np.where(e >= grok, 0.97, np.minimum(val, 0.9))
    return train, val


def write_run(folder: Path, cfg: dict, outcomes: list[int | None | str], status="complete",
              written_at="2026-01-01T00:00:00+0000", probes: bool = True) -> Path:
    """outcomes: per member, a grokking epoch, None (censored at the budget) or "diverged"; probes: the
    probe columns of metrics.csv (a made-up but plausible course: norms shrink, logits grow)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    members, rows = [], []
    for m, (seed, out) in enumerate(zip(cfg["seeds"], outcomes)):
        grok = out if isinstance(out, int) else None
        n = cfg["max_epochs"] if grok is None else min(cfg["max_epochs"], grok + cfg["patience"])
        n = 30 if out == "diverged" else n
        memo = max(2, (grok or 100) // 4)
        train, val = curve(n, grok, memo)
        rows += [{"epoch": e + 1, "member": m, "seed": seed, "train_acc": train[e], "val_acc": val[e],
                  "train_loss": 1 - train[e], "val_loss": 1 - val[e], "wall_s": e * 0.1,
                  **({k: (20 - e * 0.01 if k != "softmax_collapse" else min(1.0, e / 200)) for k in PROBES}
                     if probes else {})} for e in range(n)]
        members.append({"member": m, "seed": seed, "member_hash": member_hash(cfg, seed),
                        "task": cfg["task"]["name"], "optimizer": cfg["optimizer"]["name"],
                        "head": cfg["head"]["name"], "grokking_epoch": grok,
                        "memorisation_epoch": memo if n >= memo else None, "censored": out is None,
                        "status": "diverged" if out == "diverged" else ("grokked" if grok else "censored"),
                        "diverged_epoch": n if out == "diverged" else None, "epochs_run": n,
                        "max_epochs": cfg["max_epochs"], "final_train_acc": train[-1], "final_val_acc": val[-1]})
    with open(folder / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS + (PROBES if probes else []))
        w.writeheader()
        w.writerows(rows)
    summary = {"status": status, "config_hash": config_hash(cfg), "written_at": written_at, "wall_s": 12.5,
               "device": "cpu", "members": members}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def write_sweep(root: Path, tasks=("modadd", "parity", "gcd"), heads=("softmax", "stablemax"), seeds=range(6),
                max_epochs=300, rng_seed=0) -> list[Path]:
    """A sweep whose Muon members grok sooner than AdamW's, with some censored and one diverged."""
    rng = np.random.default_rng(rng_seed)
    folders = []
    for task in tasks:
        for head in heads:
            for opt in ("muon", "adamw"):
                cfg = config(task, opt, head, seeds=list(seeds), max_epochs=max_epochs)
                centre = {"muon": 70, "adamw": 110}[opt] * (1.5 if task == "gcd" else 1.0)
                outs = [int(min(max_epochs + 1, max(5, rng.lognormal(np.log(centre), 0.5)))) for _ in seeds]
                outs = [o if o <= max_epochs else None for o in outs]
                if task == "parity" and head == "stablemax" and opt == "adamw":
                    outs[0] = "diverged"
                folders.append(write_run(Path(root) / cell_name(cfg), cfg, outs))
    return folders
