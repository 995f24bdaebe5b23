"""Tiny end-to-end runs: the CLI writes a complete run folder (with and without W&B), and every head
and optimizer trains with finite losses."""
from __future__ import annotations

import csv
import json
import math
import re
import subprocess
from pathlib import Path

import pytest

from grokmuon.train import train

from conftest import REPO, cli_env, grokmuon_exe

MEMBER_FIELDS = ("task", "optimizer", "head", "seed", "grokking_epoch", "memorisation_epoch", "censored",
                 "status", "epochs_run", "final_train_acc", "final_val_acc")
RUN_FIELDS = ("wall_s", "git_sha", "torch", "device")   # one process, one device: stored once per run


def run_cli(run_dir: Path, *overrides: str, **env) -> subprocess.CompletedProcess:
    cmd = [grokmuon_exe(), "train", "model=tiny", "task=parity", "max_epochs=2", "seeds=[0,1]", "progress=false",
           "device=cpu", *overrides, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=cli_env(**env), cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc


def check_run_folder(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete"
    members = summary["members"]
    assert [m["seed"] for m in members] == [0, 1]
    for m in members:
        missing = [k for k in MEMBER_FIELDS if k not in m and k not in summary]
        assert not missing, missing
        assert (m["task"], m["optimizer"], m["head"]) == ("parity", "muon", "softmax")
        # 2 epochs of parity: far from fitting 512 rows, so not grokked: censored at the budget
        assert (m["epochs_run"], m["status"], m["censored"], m["grokking_epoch"]) == (2, "censored", True, None)
        assert m["final_train_acc"] < 0.99 and m["memorisation_epoch"] is None
        assert 0.0 <= m["final_train_acc"] <= 1.0 and 0.0 <= m["final_val_acc"] <= 1.0
    for k in RUN_FIELDS:
        assert all(k in m for m in members) or k in summary, k
    assert summary["wall_s"] > 0 and summary["torch"] and summary["device"].startswith("cpu")
    if (REPO / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", summary["git_sha"]), summary["git_sha"]

    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["epoch"]), int(r["member"]), int(r["seed"])) for r in rows] == \
        [(1, 0, 0), (1, 1, 1), (2, 0, 0), (2, 1, 1)]                    # two rows per epoch
    for r in rows:
        for k in ("train_acc", "val_acc", "train_loss", "val_loss"):
            assert math.isfinite(float(r[k])), (k, r)
    last = {int(r["member"]): r for r in rows if r["epoch"] == "2"}
    for e, m in enumerate(members):                                     # summary = last csv row
        assert float(last[e]["val_acc"]) == pytest.approx(m["final_val_acc"])
        assert float(last[e]["train_acc"]) == pytest.approx(m["final_train_acc"])

    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"]["name"] == "parity" and config["seeds"] == [0, 1]
    return summary


def test_cli_run_folder_without_wandb(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(run_dir, "logger=none")
    check_run_folder(run_dir)
    assert not (run_dir / "wandb").exists()
    assert "seed 0" in proc.stdout and "seed 1" in proc.stdout


def test_cli_run_folder_with_wandb_offline(tmp_path):
    run_dir = tmp_path / "run"
    run_cli(run_dir, "logger=wandb", WANDB_SILENT="true")   # cli_env drops any WANDB_MODE: offline is the default
    check_run_folder(run_dir)
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2, runs                                        # one W&B run per member
    for r in runs:
        assert list(r.glob("run-*.wandb")), f"no run file in {r}"
    assert not list((run_dir / "wandb").glob("run-*")), "nothing may go online"


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
@pytest.mark.parametrize("head", ["softmax", "stablemax", "sparsemax"])
def test_every_head_and_optimizer_trains_with_finite_losses(compose_cfg, head, optimizer):
    cfg = compose_cfg("task=modadd", "task.p=13", f"head={head}", f"optimizer={optimizer}", "max_epochs=6",
                      "batch_size=32", "seeds=[0,1]", "patience=0")
    epochs = []
    results = train(cfg, on_epoch=lambda epoch, numbers, _: epochs.append(numbers))
    assert len(epochs) == 6 and [r.epochs_run for r in results] == [6, 6]
    for numbers in epochs:
        for k in ("train_loss", "val_loss", "train_acc", "val_acc"):
            assert all(math.isfinite(v) for v in numbers[k]), (k, numbers[k])
    assert all(r.status in ("censored", "grokked") for r in results)
    # It learns: every member's training loss fell.
    for e in range(2):
        assert epochs[-1]["train_loss"][e] < epochs[0]["train_loss"][e], [n["train_loss"][e] for n in epochs]


def test_bf16_autocast_runs_on_the_cpu_and_stays_close_to_fp32(compose_cfg):
    """The CPU stand-in for the GPU's bf16 runs (tests/test_gpu.py): precision=bf16 puts the forward in
    bfloat16, and a tiny model's losses stay within a percent of fp32's over a few epochs."""
    import torch

    from grokmuon.train import _autocast, build_model
    run = ("task=modadd", "task.p=13", "batch_size=32", "seeds=[0,1]", "max_epochs=4", "patience=0",
           "model.n_layers=2")
    curves = {}
    for precision in ("fp32", "bf16"):
        cfg = compose_cfg(*run, f"precision={precision}")
        rows = []
        train(cfg, on_epoch=lambda epoch, numbers, _: rows.append(numbers))
        curves[precision] = rows
        model = build_model(cfg, [0, 1], torch.device("cpu"))
        with _autocast(cfg, torch.device("cpu")):
            logits = model(torch.zeros(3, 4, dtype=torch.long))
        assert logits.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    for a, b in zip(curves["fp32"], curves["bf16"]):
        for k in ("train_loss", "val_loss"):
            assert all(math.isfinite(v) for v in b[k])
            assert b[k] == pytest.approx(a[k], rel=1e-2), k
    assert curves["bf16"] != curves["fp32"]                             # it did compute in bf16
    assert all(z < a for z, a in zip(curves["bf16"][-1]["train_loss"], curves["bf16"][0]["train_loss"]))
