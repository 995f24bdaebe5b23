"""Edge-aware tuning: a choice on an edge of what was raced is raced again in a window one step past that
edge, until it sits inside or the plan's limit is reached; the windows' choice is the choice of all
settings raced so far."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from grokmuon import racing

LR = [3e-4, 1e-3, 3e-3, 1e-2]
WD = [0.1, 0.3, 1.0]


def test_edges_name_the_axes_where_the_choice_is_outermost():
    raced = {"lr": LR, "weight_decay": WD}
    assert racing.edges({"lr": 1e-3, "weight_decay": 0.3}, raced) == {}
    assert racing.edges({"lr": 1e-2, "weight_decay": 0.3}, raced) == {"lr": "high"}
    assert racing.edges({"lr": 3e-4, "weight_decay": 1.0}, raced) == {"lr": "low", "weight_decay": "high"}
    assert racing.edges({"lr": 1e-3, "weight_decay": 0.1}, raced) == {"weight_decay": "low"}
    # one value: nothing to move past; a decay of 0 has nothing below it
    assert racing.edges({"lr": 1e-3, "weight_decay": 0.3}, {"lr": [1e-3], "weight_decay": [0.3]}) == {}
    assert racing.edges({"lr": 1e-3, "weight_decay": 0.0}, {"lr": LR, "weight_decay": [0.0, 0.15]}) == {}


def test_one_step_past_an_edge_keeps_the_grids_spacing():
    assert racing.beyond(LR, "high") == pytest.approx(0.0333)       # 1e-2 x (1e-2 / 3e-3)
    assert racing.beyond(LR, "low") == pytest.approx(9e-5)          # 3e-4 / (1e-3 / 3e-4)
    assert racing.beyond([0.05, 0.15, 0.5], "high") == pytest.approx(1.67)
    assert racing.beyond([0.05, 0.15, 0.5], "low") == pytest.approx(0.0167)
    # a decay of 0 is no step on a log axis: the ratio of the positive values, or a decade if one is left
    assert racing.beyond([0.0, 0.05, 0.15], "high") == pytest.approx(0.45)
    assert racing.beyond([0.0, 0.15], "high") == pytest.approx(1.5)
    assert racing.window({"lr": 1e-3, "weight_decay": 0.15}, {"lr": LR, "weight_decay": [0.0, 0.15]}) == {
        "lr": [3e-4, 1e-3, 3e-3], "weight_decay": [0.15, 1.5]}


def test_the_window_holds_the_choice_one_step_past_its_edge_and_its_neighbours():
    raced = {"lr": LR, "weight_decay": WD}
    assert racing.window({"lr": 1e-2, "weight_decay": 0.3}, raced) == {"lr": [1e-2, 0.0333], "weight_decay": WD}
    assert racing.window({"lr": 1e-2, "weight_decay": 1.0}, raced) == {"lr": [1e-2, 0.0333],
                                                                      "weight_decay": [1.0, 3.33]}
    assert racing.window({"lr": 1e-3, "weight_decay": 0.1}, raced) == {"lr": [3e-4, 1e-3, 3e-3],
                                                                      "weight_decay": [0.0333, 0.1]}


def race(epochs_of, grid):
    """A simulated race over a product grid: every setting's epochs cut where the race decides."""
    configs = {(lr, wd): epochs_of(lr, wd) for lr in grid["lr"] for wd in grid["weight_decay"]}
    t = next((t for t in range(1, 301) if racing.decided(configs, t)), None)
    if t is None:
        return configs, racing.choose(configs)
    cut = {k: [e if e is not None and e <= t else None for e in v] for k, v in configs.items()}
    return configs, racing.choose(cut)


def test_racing_windows_chooses_what_all_settings_raced_so_far_choose():
    # Random response surfaces (distinct epochs, so no tie reaches the grid-order rule): the choice after
    # the windows is the best of every setting raced in any round, judged on their whole runs.
    for trial in range(200):
        rng = np.random.default_rng(trial)
        tilt = rng.normal(size=2)

        def epochs_of(lr, wd):
            g = np.random.default_rng(abs(hash((round(np.log(lr), 6), round(np.log(wd), 6), trial))) % 2**32)
            base = 60 + 15 * (tilt[0] * np.log10(lr) + tilt[1] * np.log10(wd)) + g.normal(0, 8)
            return [float(e) if e < 250 else None for e in base + g.normal(0, 10, 3)]

        raced = {"lr": list(LR), "weight_decay": list(WD)}
        seen, (lr, wd) = race(epochs_of, raced)
        for _ in range(3):
            choice = {"lr": lr, "weight_decay": wd}
            if not racing.edges(choice, raced):
                break
            grid = racing.window(choice, raced)
            assert (lr in grid["lr"]) and (wd in grid["weight_decay"])       # the choice races again
            for k, v in grid.items():
                raced[k] = sorted(set(raced[k]) | set(v))
            configs, (lr, wd) = race(epochs_of, grid)
            seen |= configs
        assert (lr, wd) == racing.choose(seen), trial


def test_windows_choose_what_all_settings_raced_so_far_choose_where_few_or_none_grok():
    # Surfaces where most settings never grok within the budget, so a race often runs to it with nothing
    # grokked and racing.FALLBACK (mean final val accuracy) chooses, and a window may find grokking where
    # the grid found none: the last window's choice is still the best of every setting raced.
    fallbacks = 0
    for trial in range(200):
        rng = np.random.default_rng(1000 + trial)
        tilt, vtilt = rng.normal(size=2), rng.normal(size=2)

        def seeded(lr, wd, what):
            return np.random.default_rng(abs(hash((round(np.log(lr), 6), round(np.log(wd), 6), trial, what))) % 2**32)

        def epochs_of(lr, wd):
            base = 280 + 40 * (tilt[0] * np.log10(lr) + tilt[1] * np.log10(wd)) + seeded(lr, wd, 0).normal(0, 20)
            return [float(e) if e < 250 else None for e in base + seeded(lr, wd, 1).normal(0, 10, 3)]

        def val_of(lr, wd):
            return float(0.9 + 0.02 * (vtilt[0] * np.log10(lr) + vtilt[1] * np.log10(wd)) + seeded(lr, wd, 2).normal(0, 0.01))

        def race_val(grid):
            configs = {(lr, wd): epochs_of(lr, wd) for lr in grid["lr"] for wd in grid["weight_decay"]}
            val = {k: val_of(*k) for k in configs}
            t = next((t for t in range(1, 301) if racing.decided(configs, t)), None)
            cut = configs if t is None else {k: [e if e is not None and e <= t else None for e in v]
                                             for k, v in configs.items()}
            return configs, val, racing.choose(cut, val)

        raced = {"lr": list(LR), "weight_decay": list(WD)}
        seen, seen_val, (lr, wd) = race_val(raced)
        fallbacks += racing.none_grokked(seen)
        for _ in range(3):
            choice = {"lr": lr, "weight_decay": wd}
            if not racing.edges(choice, raced):
                break
            grid = racing.window(choice, raced)
            for k, v in grid.items():
                raced[k] = sorted(set(raced[k]) | set(v))
            configs, val, (lr, wd) = race_val(grid)
            seen, seen_val = seen | configs, seen_val | val
        assert (lr, wd) == racing.choose(seen, seen_val), trial
    assert 20 < fallbacks < 180          # both kinds of grid occur: the property is tested on each


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def test_tune_races_a_window_past_the_edge_and_confirms_its_choice(tmp_path):
    # A 2 x 2 grid: whatever it chooses sits on a corner, so one window (the plan's limit) must follow.
    plan = tmp_path / "plan.yaml"
    plan.write_text("tune_seeds: [0, 1, 2]\nconfirm_seeds: [10, 11, 12]\nmax_extensions: 1\ngrids:\n"
                    "  adamw: {lr: [0.003, 0.01], weight_decay: [0.1, 1.0]}\n")
    over = ["task=modadd", "task.p=11", "model=tiny", "max_epochs=30", "batch_size=16", "grok_train_acc=0.9",
            "grok_val_acc=0.5", "device=cpu", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    r = subprocess.run([sys.executable, "-m", "grokmuon.cli", "tune", "--plan", str(plan), "--optimizers", "adamw",
                        *over], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    runs = {}
    for f in (tmp_path / "sweep").iterdir():
        if (f / "summary.json").exists():
            cfg = json.loads((f / "config.json").read_text())
            runs[(cfg["role"], cfg["race_round"])] = (cfg, json.loads((f / "summary.json").read_text()))
    assert sorted(runs) == [("confirm", 0), ("tune", 0), ("tune", 1)]
    first = runs[("tune", 0)][1]["race"]["chosen"]
    # the window, written from the definition: the corner and one step past it (x or / the grid's ratio)
    lr_step = {0.01: [0.01, 0.0333], 0.003: [0.0009, 0.003]}[first["lr"]]
    wd_step = {1.0: [1.0, 10.0], 0.1: [0.01, 0.1]}[first["weight_decay"]]
    window = runs[("tune", 1)][0]["grid"]
    assert window["lr"] == pytest.approx(lr_step) and window["weight_decay"] == pytest.approx(wd_step)
    final = runs[("tune", 1)][1]["race"]["chosen"]
    confirm = runs[("confirm", 0)][1]["members"]
    assert {(m["lr"], m["weight_decay"]) for m in confirm} == {(final["lr"], final["weight_decay"])}
    assert [m["seed"] for m in confirm] == [10, 11, 12]
    assert "racing a window past it (round 1)" in r.stdout
    still = bool(racing.edges(final, {"lr": [0.0009, 0.003, 0.01, 0.0333], "weight_decay": [0.01, 0.1, 1.0, 10.0]}))
    assert ("the plan's limit" in r.stdout) == still
