"""`grokmuon tune` over any number of arms: a plan's arms (a name and its overrides), each raced on its
grid (its own, else its optimizer's) and confirmed on fresh seeds; a plan without arms is today's two,
naming exactly the committed folders; bad arms refused in one line; conf/tune_arms.yaml composes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from grokmuon import tune
from conftest import REPO

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "grokmuon.cli", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=900)


def test_a_plan_without_arms_has_todays_two_with_todays_command_lines():
    for name in ("tune.yaml", "tune_v1.yaml"):
        plan = tune.load_plan(REPO / "conf" / name)
        assert plan["arms"] == {"adamw": ["optimizer=adamw"], "muon": ["optimizer=muon"]}
        grid = plan["grids"]["muon"]
        assert tune.tune_overrides(plan, "muon", ["task=gcd"]) == [
            "experiment=tune", "optimizer=muon", "seeds=[0,1,2]", f"grid.lr={tune.seq(grid['lr'])}",
            f"grid.weight_decay={tune.seq(grid['weight_decay'])}", "stop=race", "role=tune", "task=gcd"]
        assert tune.confirm_overrides(plan, "adamw", 0.003, 0.3, ["task=gcd"]) == [
            "experiment=tune", "optimizer=adamw", "seeds=[100,101,102,103,104]", "optimizer.lr=0.003",
            "optimizer.weight_decay=0.3", "role=confirm", "task=gcd"]


def test_the_committed_tuning_cells_are_the_folders_tune_names_today():
    """Every committed multirun/tune cell (races, windows, confirmations) is the folder tune's command line
    for it resolves to, with today's schema (grokfast's default node included): a re-run trains nothing."""
    plan = tune.load_plan(REPO / "conf" / "tune.yaml")
    folders = sorted(p.parent for p in (REPO / "multirun" / "tune").glob("*/config.json"))
    assert len(folders) >= 30
    for folder in folders:
        cfg = json.loads((folder / "config.json").read_text())
        user = [f"task={cfg['task']['name']}"]
        opt = cfg["optimizer"]["name"]
        if cfg["role"] == "tune":
            grid = {k: cfg["grid"][k] for k in tune.AXES}
            overrides = tune.tune_overrides(plan, opt, user, grid, cfg.get("race_round", 0))
        else:
            overrides = tune.confirm_overrides(plan, opt, cfg["optimizer"]["lr"], cfg["optimizer"]["weight_decay"], user)
        assert tune.job_folder(overrides).name == folder.name, (folder.name, overrides)


def plan_text(arms: str, grids: str = "") -> str:
    return ("tune_seeds: [0, 1, 2]\nconfirm_seeds: [10, 11, 12]\nmax_extensions: 0\n"
            "grids:\n  adamw: {lr: [0.003, 0.01], weight_decay: [0.1, 1.0]}\n"
            "  muon: {lr: [0.01, 0.05], weight_decay: [0.0, 0.15]}\n" + grids + "arms:\n" + arms)


@pytest.mark.parametrize("arms,needle", [
    ("  bare: [momentum=0]\n", "names no optimizer"),
    ("  seeded: [optimizer=muon, 'seeds=[5]']\n", "sets seeds, which tune sets itself"),
    ("  gridded: [optimizer=muon, 'grid.lr=[0.1]']\n", "sets grid.lr"),
    ("  lr: [optimizer=muon, optimizer.lr=0.1]\n", "sets optimizer.lr"),
    ("  nogrid: [optimizer=normuon]\n", "no grid for arm 'nogrid'"),
    ("  notalist: optimizer=muon\n", "must list key=value overrides"),
])
def test_bad_arms_are_one_line(tmp_path, arms, needle):
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text(arms))
    r = run("tune", "--plan", plan, cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr


def test_an_unknown_arm_is_one_line(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text("  muon_nomomentum: [optimizer=muon, optimizer.momentum=0]\n"))
    r = run("tune", "--plan", plan, "--arms", "muon,nosuch", cwd=tmp_path)
    assert r.returncode == 2 and "no arm muon, nosuch" in r.stderr and "it has muon_nomomentum" in r.stderr


def test_tune_races_and_confirms_every_arm_on_its_grid(tmp_path):
    """Three arms on a tiny task: AdamW with grokfast on AdamW's grid, Muon without momentum on Muon's, and
    NorMuon on its own grid under its arm's name. Each is raced on its 2 x 2 grid x 3 tuning seeds and its
    choice confirmed on the fresh seeds, into the plan's experiment folder, each run carrying its overrides."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text("  adamw_grokfast: [optimizer=adamw, grokfast=ema]\n"
                              "  muon_nomomentum: [optimizer=muon, optimizer.momentum=0]\n"
                              "  normuon_own: [optimizer=normuon]\n",
                              "  normuon_own: {lr: [0.02, 0.04], weight_decay: [0.0, 0.1]}\n") + "experiment: arms\n")
    over = ["task=modadd", "task.p=11", "model=tiny", "max_epochs=8", "batch_size=16", "grok_train_acc=0.9",
            "grok_val_acc=0.5", "device=cpu", "probes=false", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    r = run("tune", "--plan", plan, *over, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    configs = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/config.json")}
    assert len(configs) == 6                                          # a race and a confirmation per arm
    want = {"adamw_grokfast": ("adamw", {"lr": [0.003, 0.01], "weight_decay": [0.1, 1.0]}),
            "muon_nomomentum": ("muon", {"lr": [0.01, 0.05], "weight_decay": [0.0, 0.15]}),
            "normuon_own": ("normuon", {"lr": [0.02, 0.04], "weight_decay": [0.0, 0.1]})}
    for arm, (opt, grid) in want.items():
        mine = [c for c in configs.values() if c["optimizer"]["name"] == opt]
        race = next(c for c in mine if c["role"] == "tune")
        confirm = next(c for c in mine if c["role"] == "confirm")
        assert race["grid"] == grid and race["seeds"] == [0, 1, 2] and race["experiment"] == "arms"
        assert confirm["seeds"] == [10, 11, 12] and confirm["stop"] == "patience"
        assert (confirm["optimizer"]["lr"], confirm["optimizer"]["weight_decay"]) in \
            {(lr, wd) for lr in grid["lr"] for wd in grid["weight_decay"]}
        for c in (race, confirm):
            assert c["grokfast"]["name"] == ("ema" if arm == "adamw_grokfast" else "none")
            assert c["optimizer"]["momentum"] == (0 if arm == "muon_nomomentum" else 0.95)
        assert f"tune {arm}: chose lr" in r.stdout and f"confirm {arm} (lr" in r.stdout
    assert f"next: grokmuon collect {tmp_path / 'sweep'}" in r.stdout


def test_the_arms_plan_and_experiment_compose():
    """conf/tune_arms.yaml: the eight arms, each on the shared 4 x 3 budget, every job's command line
    composes and validates (precheck), fresh confirmation seeds unused by any committed sweep."""
    from grokmuon.precheck import precheck
    plan = tune.load_plan(REPO / "conf" / "tune_arms.yaml")
    assert len(plan["arms"]) == 8 and plan["experiment"] == "arms"
    for arm in plan["arms"]:
        grid = tune.grid_of(plan, arm)
        assert len(grid["lr"]) * len(grid["weight_decay"]) == 12
        for task in ("modadd", "moddiv", "gcd"):
            precheck(tune.tune_overrides(plan, arm, [f"task={task}"]))
        precheck(tune.confirm_overrides(plan, arm, 1e-3, 0.1, ["task=gcd"]))
    used = set()
    for path in Path(REPO, "multirun").glob("*/*/config.json"):       # every sweep but this one's own
        if path.parts[-3] != "arms":
            used |= set(json.loads(path.read_text())["seeds"])
    for path in Path(REPO, "conf", "experiment").glob("*.yaml"):        # sweeps not yet committed too
        if path.stem != "arms":
            used |= set(OmegaConf.load(path).get("seeds") or [])
    assert OmegaConf.load(REPO / "conf" / "experiment" / "arms.yaml").seeds == plan["confirm_seeds"]
    assert not set(plan["confirm_seeds"]) & used and not set(plan["confirm_seeds"]) & set(plan["tune_seeds"])
