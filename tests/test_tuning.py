"""Fair tuning: racing's pure rules, a raced grid choosing what a run to budget chooses, `grokmuon tune`
end to end (race, choose, confirm on fresh seeds, collect with roles, the tuned-against-tuned report),
the permutation log-rank against brute force, the delay columns, and bad grids refused in one line."""
from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from grokmuon import racing, stats
from grokmuon.config import ConfigError, validate
from grokmuon.runfolder import RunLog
from grokmuon.runid import config_hash, member_hash
from grokmuon.train import train
from conftest import REPO, compose_config, study_copy

# --- racing: pure rules -----------------------------------------------------------------------------


def test_median_epoch_is_the_kaplan_meier_median_without_early_censoring():
    for epochs in ([5, 9, None], [None, None, 4], [3, 8, 2, 20], [7, None, None, None], [None, None]):
        time = [e if e is not None else 100 for e in epochs]
        km = stats.km_median(time, [e is not None for e in epochs])
        assert racing.median_epoch(epochs) == km, epochs


def test_decided_when_some_setting_has_half_its_seeds_grokked():
    configs = {"a": [10, None, 30], "b": [12, 14, None]}
    assert not racing.decided(configs, 13)
    assert racing.decided(configs, 14)          # b: 2 of 3 by 14
    assert racing.decided({"c": [None, 5]}, 5)  # 1 of 2 is half


def test_choose_follows_the_tie_rule():
    # earliest median wins
    assert racing.choose({"a": [10, 20, None], "b": [9, 15, 30]}) == "b"
    # same median: more grokked by it
    assert racing.choose({"a": [20, 10, None], "b": [20, 20, 12]}) == "b"
    # same median and count: earlier mean of those grokked by the median
    assert racing.choose({"a": [20, 10, None], "b": [20, 6, None]}) == "b"
    # all equal: grid order
    assert racing.choose({"a": [20, 10, None], "b": [10, 20, None]}) == "a"
    # no median anywhere: more grokked, then earlier mean
    assert racing.choose({"a": [None, None, 50], "b": [None, None, None]}) == "a"
    # a grokked member outranks any validation accuracy: the fallback is for grids where nothing grokked
    assert racing.choose({"a": [None, None, 50], "b": [None] * 3}, {"a": 0.5, "b": 0.9}) == "a"


def test_where_nothing_grokked_the_highest_final_val_accuracy_chooses():
    nothing = {"a": [None] * 3, "b": [None] * 3, "c": [None] * 3}
    assert racing.none_grokked(nothing) and not racing.none_grokked({"a": [None, 7]})
    assert racing.choose(nothing) == "a"                                        # no accuracies: grid order
    assert racing.choose(nothing, {"a": 0.90, "b": 0.95, "c": 0.93}) == "b"
    assert racing.choose(nothing, {"a": 0.90, "b": 0.95, "c": 0.95}) == "b"     # equal: grid order
    assert racing.by_accuracy({"a": 0.90, "b": 0.95, "c": 0.95}) == ["b", "c", "a"]   # the order it chooses by
    # ...and those equal ones are ties (what grid order alone separated); distinct means: one best
    assert racing.tied(nothing, {"a": 0.90, "b": 0.95, "c": 0.95}) == ["b", "c"]
    assert racing.tied(nothing, {"a": 0.90, "b": 0.95, "c": 0.93}) == ["b"]
    assert racing.tied(nothing) == []                                           # no accuracies: no evidence
    # the mean over a setting's seeds; a diverged member (or a NaN accuracy) counts as 0
    val = racing.val_by_config([(1, 0.1, "censored", 0.9), (1, 0.1, "diverged", 0.99), (2, 0.1, "censored", 0.5),
                                (2, 0.1, "censored", float("nan")), (3, 0.1, "censored", None), (3, 0.1, "censored", 0.2)])
    assert val == {(1, 0.1): 0.45, (2, 0.1): 0.25, (3, 0.1): 0.1}


def test_tied_finds_the_settings_only_grid_order_separates():
    # equal median, count and mean: tied, whichever seed grokked when
    assert racing.tied({"a": [20, 10, None], "b": [10, 20, None], "c": [30, 30, 30]}) == ["a", "b"]
    # the same median but an earlier mean: no tie, one best
    assert racing.tied({"a": [20, 10, None], "b": [20, 6, None]}) == ["b"]
    # no median anywhere: the fallback's order (count, then mean) decides the ties
    assert racing.tied({"a": [None, None, 50], "b": [50, None, None], "c": [None, None, 49]}) == ["c"]
    # nothing grokked: nothing was chosen on evidence, so nothing is tied
    assert racing.tied({"a": [None, None], "b": [None, None]}) == []
    # the tied settings are the ones choose() picks among: its choice is the first of them in grid order
    configs = {"a": [30, None, 30], "b": [12, 14, None], "c": [14, 12, None]}
    assert racing.tied(configs) == ["b", "c"] and racing.choose(configs) == "b"


def test_tune_says_when_grid_order_alone_made_its_choice(tmp_path):
    from grokmuon.tune import chosen, race_configs, tie_note

    def race(epochs: dict, val: dict | None = None) -> Path:
        members = [{"lr": lr, "weight_decay": wd, "seed": s, "status": "grokked" if e else "raced_out",
                    "grokking_epoch": e, "final_val_acc": (val or {}).get((lr, wd), 0.5) + s / 1000}
                   for (lr, wd), eps in epochs.items() for s, e in enumerate(eps)]
        folder = tmp_path / f"race{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({"status": "complete", "members": members}))
        return folder

    tied = race_configs(race({(0.003, 0.0111): [54, 53, None], (0.003, 0.0333): [54, 53, None],
                              (0.01, 0.0111): [None] * 3}))
    assert chosen(*tied) == (0.003, 0.0111, 54)          # the first in grid order
    assert tie_note(tied[0]) == ("lr 0.003 weight_decay 0.0111, lr 0.003 weight_decay 0.0333 tie on every rule but "
                              "grid order (the same epoch on every seed): grid order chose between them")
    apart = race_configs(race({(0.003, 0.0111): [54, 53, None], (0.003, 0.0333): [54, 52, None]}))  # earlier mean
    assert chosen(*apart)[:2] == (0.003, 0.0333) and tie_note(apart[0]) is None
    # nothing grokked: the written final accuracies choose (here the second setting), not grid order
    nothing = race({(0.0003, 0.1): [None] * 3, (0.001, 0.1): [None] * 3, (0.003, 0.1): [None] * 3},
                   {(0.0003, 0.1): 0.948, (0.001, 0.1): 0.955, (0.003, 0.1): 0.935})
    configs, val = race_configs(nothing)
    assert chosen(configs, val) == (0.001, 0.1, None) and abs(val[(0.001, 0.1)] - 0.956) < 1e-9
    assert chosen(configs) == (0.0003, 0.1, None) and tie_note(configs, val) is None
    flat = race_configs(race({(0.001, 0.0333): [None] * 3, (0.001, 0.1): [None] * 3},
                             {(0.001, 0.0333): 0.95, (0.001, 0.1): 0.95}))
    assert chosen(*flat)[:2] == (0.001, 0.0333)                                 # equal accuracies: grid order
    assert tie_note(*flat) == ("lr 0.001 weight_decay 0.0333, lr 0.001 weight_decay 0.1 tie on every rule but grid "
                               "order (no member grokked; the same mean final val accuracy, 0.951): grid order "
                               "chose between them")


def test_tuning_races_name_the_races_that_grid_order_decided():
    import pandas as pd
    from grokmuon.report_tuning import tuning_table
    rows = []
    for task, epochs in (("gcd", {(0.003, 0.1): [20, 22, None], (0.003, 0.3): [20, 22, None], (0.01, 0.1): [40, None, None]}),
                         ("modadd", {(0.003, 0.1): [20, 22, None], (0.003, 0.3): [21, 22, None]})):
        for (lr, wd), eps in epochs.items():
            for seed, e in enumerate(eps):
                rows.append(dict(task=task, head="softmax", optimizer="adamw", lr=lr, weight_decay=wd, seed=seed,
                                 grokking_epoch=e, grokked=e is not None, status="grokked" if e else "raced_out",
                                 epochs_run=22, max_epochs=300, wall_s=60.0, time=e or 22, event=e is not None))
    text = tuning_table(pd.DataFrame(rows))
    assert "*Ties*" in text
    assert "- gcd softmax adamw: lr 0.003 wd 0.1, lr 0.003 wd 0.3 (the same epoch on every seed)" in text
    assert "- modadd" not in text       # modadd's 0.1 has the earlier mean: chosen on evidence
    one = tuning_table(pd.DataFrame([r for r in rows if r["task"] == "modadd"]))
    assert "*Ties*" not in one and "*Nothing grokked*" not in text


def test_tuning_races_say_which_races_chose_by_final_val_accuracy():
    import pandas as pd
    from grokmuon.report_tuning import tuning_table
    rows = [dict(task="gcd", head="softmax", optimizer="adamw", lr=lr, weight_decay=wd, seed=seed, grokking_epoch=None,
                 grokked=False, status="diverged" if acc is None else "censored", final_val_acc=acc,
                 epochs_run=300, max_epochs=300, wall_s=60.0, time=300, event=False)
            for (lr, wd), accs in {(0.0003, 0.1): [0.95, 0.95], (0.001, 0.1): [0.96, 0.96], (0.01, 0.1): [None, 0.99]}.items()
            for seed, acc in enumerate(accs)]
    text = tuning_table(pd.DataFrame(rows))
    assert "*Nothing grokked*" in text and "*Ties*" not in text
    # 0.01 has the best single member, but its diverged one counts 0: 0.001 first, 0.0003 next
    assert "- gcd softmax adamw: lr 0.001 wd 0.1 0.960; lr 0.0003 wd 0.1 0.950" in text
    flat = pd.DataFrame([{**r, "final_val_acc": 0.9 if r["final_val_acc"] is not None else None} for r in rows])
    text = tuning_table(flat)           # 0.0003 and 0.001 equal: grid order chose, a tie the report names
    assert "- gcd softmax adamw: lr 0.0003 wd 0.1, lr 0.001 wd 0.1 (no member grokked; the same mean final val " \
           "accuracy, 0.900)" in text


def race_in_parts_rows(folders: dict[str, dict]) -> list[dict]:
    """Tuning rows of one race run in parts: folder -> {(lr, wd): (grokking epochs by seed, epochs run)}."""
    return [dict(task="moddiv", head="softmax", optimizer="adamw", lr=lr, weight_decay=wd, seed=seed,
                 grokking_epoch=e, grokked=e is not None, status="grokked" if e else "raced_out", run_dir=folder,
                 epochs_run=ran, max_epochs=300, wall_s=3600.0, time=e or ran, event=e is not None)
            for folder, settings in folders.items() for (lr, wd), (eps, ran) in settings.items()
            for seed, e in enumerate(eps)]


def test_tuning_races_count_a_race_in_parts_as_the_whole_race_saw_it():
    """The first part (lr 0.01, folder name sorting last) ran to 120 and its wd 0.1 grokked at 80-110; the
    second (lr 0.001) found a best median of 60 and stopped there. The whole race stopped at 60: the first
    part's setting counts 0 grokked, its members raced out; cost rows are what each part ran, in grid order."""
    import pandas as pd
    from grokmuon.report_tuning import tuning_table
    rows = race_in_parts_rows({"z-first": {(0.01, 0.1): ([80, 90, 110], 120), (0.01, 0.3): ([None] * 3, 120)},
                               "a-second": {(0.001, 0.1): ([50, 60, None], 60), (0.001, 0.3): ([None] * 3, 60)}})
    text = tuning_table(pd.DataFrame(rows))
    assert "| moddiv | softmax | adamw | 0.01 | 0.1 | 3 | 0 | 3 | > 60 |" in text, text
    assert "| moddiv | softmax | adamw | 0.001 | 0.1 | 3 | 2 | 1 | 60 |" in text, text
    first, second = text.index("| lr 0.001 × wd 0.1, 0.3 | 6 | 60 |"), text.index("| lr 0.01 × wd 0.1, 0.3 | 6 | 120 |")
    assert first < second          # grid order, not the folders' names
    # A race of one folder is counted as it ran (nothing to cut), and its cost row has no part column.
    one = tuning_table(pd.DataFrame(race_in_parts_rows({"only": {(0.01, 0.1): ([80, 90, 110], 120)}})))
    assert "| 0.01 | 0.1 | 3 | 3 | 0 | 90 |" in one and "| part |" not in one


def test_a_report_refuses_two_races_pooled_under_one_key():
    """The same race run again with another --race-chunks leaves two folders per member: the report says
    so in one line instead of pooling two races' evidence into one choice."""
    import pandas as pd
    from grokmuon.report_tuning import tuning_table
    from grokmuon.results import TableError
    whole = {(0.001, 0.1): ([50, 60, None], 60), (0.01, 0.1): ([None] * 3, 60)}
    rows = race_in_parts_rows({"whole": whole, "part-1": {(0.001, 0.1): whole[(0.001, 0.1)]}})
    with pytest.raises(TableError, match=r"lr 0\.001 weight decay 0\.1 seed 0 in 2 run folders \(part-1, whole\)"):
        tuning_table(pd.DataFrame(rows))


def test_choose_from_race_knowledge_equals_choose_from_the_full_run():
    """Cut every setting's epochs at the race's stop (later ones unknown = None): same choice."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        configs = {k: [int(e) if e < 60 else None for e in rng.integers(1, 80, 3)] for k in range(6)}
        t = next((t for t in range(1, 61) if racing.decided(configs, t)), None)
        if t is None:
            continue
        raced = {k: [e if e is not None and e <= t else None for e in v] for k, v in configs.items()}
        assert racing.choose(raced) == racing.choose(configs)


def test_split_keeps_grid_order_in_near_equal_parts():
    assert racing.split([1, 2, 3, 4], 3) == [[1, 2], [3], [4]]
    assert racing.split([1, 2, 3], 1) == [[1, 2, 3]]
    assert racing.split([1], 4) == [[1]]                   # never an empty part
    for n in range(1, 7):
        parts = racing.split(list(range(5)), n)
        assert sum(parts, []) == list(range(5)) and max(map(len, parts)) - min(map(len, parts)) <= 1


def test_tune_parts_list_every_setting_once_in_grid_order():
    from grokmuon.config import members
    from grokmuon.tune import parts
    grid = {"lr": [1e-3, 3e-3, 1e-2, 3e-2], "weight_decay": [0.1, 0.3, 1.0]}
    def settings(g):
        return [(lr, wd) for _, lr, wd in members({"grid": g, "optimizer": {}, "seeds": [0]})]
    for n, count in ((1, 1), (2, 2), (4, 4), (5, 8), (12, 12), (20, 12)):
        ps = parts(grid, n)
        assert len(ps) == count and sum(map(settings, ps), []) == settings(grid)
    assert parts({"weight_decay": [0.1, 0.3]}, 3) == [{"weight_decay": [0.1]}, {"weight_decay": [0.3]}]


def race_as_trained(configs, stop_by=None, budget=90):
    """What a race of these configurations knows when the trainer stops it: at the first epoch some
    setting has half its seeds grokked, or at stop_by (race_stop_by), else at the budget."""
    stop = next((t for t in range(1, budget + 1)
                 if racing.decided(configs, t) or (stop_by is not None and t >= stop_by)), None)
    return racing.truncate(configs, stop)


def random_races(rng, count: int):
    """count random grids of 2-12 settings x 3 seeds (grokking epochs 1-69, else not grokked): (settings in
    grid order, their epochs, what the whole race knows at its stop)."""
    for _ in range(count):
        keys = list(range(int(rng.integers(2, 13))))
        configs = {k: [int(e) if e < 70 else None for e in rng.integers(1, 100, 3)] for k in keys}
        yield keys, configs, race_as_trained(configs)


def test_a_race_in_parts_chooses_what_the_whole_race_chooses():
    """Random grids of 2-12 settings x 3 seeds, raced whole and in 2-5 parts (racing.in_parts, each part
    after the first stopped by the best median so far): the same evidence at the stop, the same choice,
    the same ties; and no part runs past the whole race's stop unless it is the first or found nothing
    before the best median was known."""
    rng = np.random.default_rng(1)
    for keys, configs, whole in random_races(rng, 400):
        for n in (2, 3, 5):
            merged, stop = racing.in_parts(racing.split(keys, n),
                                           lambda part, by: race_as_trained({k: configs[k] for k in part}, by))
            assert list(merged) == keys
            assert stop == racing.best_median(whole)
            if stop is not None:
                assert merged == whole
            assert racing.choose(merged) == racing.choose(whole)
            assert racing.tied(merged) == racing.tied(whole)
            caps = []                   # each part after the first ran with the best median found before it
            racing.in_parts(racing.split(keys, n), lambda part, by: caps.append(by) or
                            race_as_trained({k: configs[k] for k in part}, by))
            seen = [racing.best_median(race_as_trained({k: configs[k] for k in p})) for p in racing.split(keys, n)]
            assert caps == [min([x for x in seen[:i] if x is not None], default=None) for i in range(len(caps))]
            assert all(c is None or c >= stop for c in caps)


def test_a_race_in_parts_run_in_any_order_chooses_what_the_whole_race_chooses():
    """--race-first: one part moved to the front (racing.lead_with), the others in grid order. Put back in
    grid order (racing.in_order), the evidence, the choice and the ties are the whole race's; the part run
    first is never stopped early, and no later part runs past the best median found before it."""
    rng = np.random.default_rng(2)
    for keys, configs, whole in random_races(rng, 300):
        for n in (2, 3, 5):
            ordered = racing.split(keys, n)
            lead = int(rng.integers(len(ordered)))
            run_order = racing.lead_with(ordered, lambda part: part is ordered[lead])
            assert run_order[0] is ordered[lead] and [p for p in run_order[1:]] == ordered[:lead] + ordered[lead + 1:]
            caps = []
            merged, stop = racing.in_parts(run_order, lambda part, by: caps.append(by) or
                                           race_as_trained({k: configs[k] for k in part}, by))
            merged = racing.in_order(merged, keys)
            assert list(merged) == keys and stop == racing.best_median(whole)
            if stop is not None:
                assert merged == whole
            assert racing.choose(merged) == racing.choose(whole)
            assert racing.tied(merged) == racing.tied(whole)
            assert caps[0] is None and all(c is None or c >= stop for c in caps)
    assert racing.lead_with([[1], [2]], lambda part: part == [3]) == [[1], [2]]    # none holds: as given
    with pytest.raises(ValueError):
        racing.in_order({1: [None]}, [1, 2])


def test_tune_race_in_parts_with_any_prior_chooses_what_the_whole_race_chooses(monkeypatch):
    """tune.race itself, the trainer stubbed by each member's made-up grokking epoch (coarse, so ties are
    common; a third never grok): windows past edges (up to 2), raced whole and in 2-9 parts with no prior,
    each grid setting as the prior, and one off the grid. The final choice and the settings raced are the
    whole race's every time: race_round's grid order and the windows' re-centred prior included."""
    import random

    from grokmuon import tune as tune_mod
    seeds = [0, 1, 2]

    def epoch(lr, wd, seed, trial):
        r = random.Random(hash((round(lr, 9), round(wd, 9), seed, trial)))
        return r.choice([10, 20, 20, 30, 40, None, None, None])

    def configs_of(folder):
        grid, stop_by, trial = folder
        configs = {(lr, wd): [epoch(lr, wd, s, trial) for s in seeds]
                   for lr in grid["lr"] for wd in grid["weight_decay"]}
        return race_as_trained(configs, stop_by, budget=60)

    trial = [0]
    monkeypatch.setattr(tune_mod, "tune_overrides",
                        lambda plan, arm, user, grid=None, round_=0, stop_by=None:
                        (grid or plan["grids"]["muon"], stop_by, trial[0]))
    monkeypatch.setattr(tune_mod, "train", lambda overrides: None)
    monkeypatch.setattr(tune_mod, "job_folder", lambda overrides: overrides)
    monkeypatch.setattr(tune_mod, "race_configs", lambda folder: (
        configs_of(folder), {k: round(random.Random(hash((k, folder[2]))).random(), 1) for k in configs_of(folder)}))
    monkeypatch.setattr(tune_mod, "raced_settings", lambda folder: set(configs_of(folder)))
    grid = {"lr": [0.001, 0.003, 0.01], "weight_decay": [0.1, 0.3, 1.0]}
    plan = {"grids": {"muon": grid}, "arms": {"muon": ["optimizer=muon"]}, "max_extensions": 2}
    priors = [None, (0.5, 0.5)] + [(lr, wd) for lr in grid["lr"] for wd in grid["weight_decay"]]
    for trial[0] in range(40):
        whole = tune_mod.race(plan, "muon", [], 1)
        for chunks in (2, 3, 5, 9):
            for first in priors:
                assert tune_mod.race(plan, "muon", [], chunks, first) == whole, (trial[0], chunks, first)


def test_holds_finds_the_part_of_a_grid_that_races_a_setting():
    from grokmuon.tune import holds, parts
    grid = {"lr": [0.001, 0.003, 0.01], "weight_decay": [0.1, 0.3, 1.0]}
    found = [part for part in parts(grid, 9) if holds(part, (0.01, 0.3))]
    assert found == [{"lr": [0.01], "weight_decay": [0.3]}]
    assert [holds(part, (0.01, 0.3)) for part in parts(grid, 3)] == [False, False, True]
    assert not any(holds(part, (0.02, 0.3)) for part in parts(grid, 3))
    assert holds({"lr": [0.01]}, (0.01, 5.0))      # an axis the grid does not carry holds any value


# --- racing through the trainer ---------------------------------------------------------------------

# A tiny Muon grid on modadd mod 11 with lowered thresholds: 2 lr x 2 weight decay x 3 seeds, every
# setting but one grokking in 2 of its 3 seeds within the 30-epoch budget, the best near epoch 15.
TINY_GRID = ["task=modadd", "task.p=11", "optimizer=muon", "seeds=[0,1,2]", "grid.lr=[0.01,0.05]",
             "grid.weight_decay=[0.0,0.15]", "max_epochs=30", "batch_size=16", "patience=100",
             "grok_train_acc=0.9", "grok_val_acc=0.5", "probes=false"]


def chosen(results):
    return racing.choose(racing.by_config((r.lr, r.weight_decay, r.status, r.grokking_epoch) for r in results))


def plain_race(members) -> tuple[int | None, tuple, int | None]:
    """The race written out for 3 seeds a setting, from (lr, weight_decay, grokking epoch or None[, final
    val accuracy]) per member in grid order: it stops at the first epoch by which some setting has 2 of its
    3 seeds grokked (None: never, it runs to the budget); it picks, from what is known there, the setting
    whose 2nd grokking epoch is earliest, then the one with more seeds grokked by that epoch, then the
    earlier mean of those, then the first in grid order; where no member grokked and accuracies are
    given, the setting with the highest mean final val accuracy. Returns (stop, (lr, weight_decay), its
    2nd grokking epoch)."""
    settings: dict[tuple, list] = {}
    accs: dict[tuple, list] = {}
    for lr, wd, epoch, *acc in members:
        settings.setdefault((lr, wd), []).append(epoch)
        accs.setdefault((lr, wd), []).extend(acc)
    if all(e is None for eps in settings.values() for e in eps) and all(accs.values()):
        means = {k: sum(v) / len(v) for k, v in accs.items()}
        return None, max(means, key=lambda k: (means[k], -list(means).index(k))), None
    seconds = [sorted(e for e in eps if e is not None)[1] for eps in settings.values()
               if sum(e is not None for e in eps) >= 2]
    stop = min(seconds) if seconds else None
    best = None
    for i, (key, eps) in enumerate(settings.items()):
        known = sorted(e for e in eps if e is not None and (stop is None or e <= stop))
        second = known[1] if len(known) >= 2 else None
        by = [e for e in known if second is None or e <= second]
        rank = (second if second is not None else math.inf, -len(by), sum(by) / len(by) if by else math.inf, i)
        if best is None or rank < best[0]:
            best = (rank, key, second)
    return stop, best[1], best[2]


def raced_run(cfg, folder, **kw):
    """train(cfg) with its run folder written as `grokmuon train` writes it: (results, summary.json)."""
    log = RunLog(folder, OmegaConf.to_container(cfg, resolve=True), "cpu")
    results = train(cfg, on_epoch=log.log_epoch, **kw)
    return results, log.finish(results)


@pytest.fixture(scope="module")
def grid_runs(tmp_path_factory):
    """TINY_GRID to its budget and raced: {"full": results, "raced": (results, summary)}."""
    return {"full": train(compose_config(*TINY_GRID, "stop=patience")),
            "raced": raced_run(compose_config(*TINY_GRID, "stop=race"), tmp_path_factory.mktemp("raced"))}


@pytest.mark.xdist_group("tuning-grid_runs")   # the raced and full grids train once, on one worker
def test_raced_grid_stops_early_and_chooses_what_the_run_to_budget_chooses(grid_runs):
    full, (raced, _) = grid_runs["full"], grid_runs["raced"]
    stop = max(r.epochs_run for r in raced)
    assert stop < max(r.epochs_run for r in full) == 30          # it saved epochs
    assert chosen(raced) == chosen(full)
    assert {r.status for r in raced} == {"grokked", "raced_out"}
    for f, r in zip(full, raced):               # same members, same order; the race only cut them short
        assert (f.seed, f.lr, f.weight_decay) == (r.seed, r.lr, r.weight_decay)
        if r.status == "grokked":
            assert r.grokking_epoch == f.grokking_epoch <= stop
        else:
            assert r.epochs_run == stop and (f.grokking_epoch is None or f.grokking_epoch > stop)


@pytest.mark.xdist_group("tuning-grid_runs")
def test_the_race_fields_say_where_it_stopped_and_what_it_chose(grid_runs):
    full, (raced, summary) = grid_runs["full"], grid_runs["raced"]
    stop, (lr, wd), median = plain_race((r.lr, r.weight_decay, r.grokking_epoch) for r in full)
    assert stop is not None and stop < 30 and median == stop
    assert summary["race"] == {"stopped_at": stop, "chosen": {"lr": lr, "weight_decay": wd},
                               "chosen_median": median, "rule": racing.RULE}
    assert all(r.epochs_run == stop for r in raced)
    assert summary["counts"]["raced_out"] == sum(r.grokking_epoch is None or r.grokking_epoch > stop for r in full)


@pytest.mark.xdist_group("tuning-grid_runs")
def test_race_stop_by_stops_a_race_there_with_the_rest_raced_out(grid_runs):
    """A part of a race run in parts stops by the best median found before it (race_stop_by): there,
    undecided, every member not yet grokked is raced_out, the others as the whole run saw them."""
    full = grid_runs["full"]
    stop, _, _ = plain_race((r.lr, r.weight_decay, r.grokking_epoch) for r in full)
    by = stop - 3
    capped = train(compose_config(*TINY_GRID, "stop=race", f"race_stop_by={by}"))
    assert all(r.epochs_run == by for r in capped)
    for f, r in zip(full, capped):
        if f.grokking_epoch is not None and f.grokking_epoch <= by:
            assert (r.status, r.grokking_epoch) == ("grokked", f.grokking_epoch)
        else:
            assert (r.status, r.grokking_epoch) == ("raced_out", None)


@pytest.mark.xdist_group("tuning-grid_runs")
def test_a_diverged_member_of_a_raced_grid_counts_as_never_grokked(grid_runs, monkeypatch, tmp_path):
    """The member that grokked first in the setting the race picks diverges after epoch 1: the race goes
    on without it (the others train as they would without it) and may pick another setting."""
    import grokmuon.train as train_mod
    full = grid_runs["full"]
    _, (lr, wd), _ = plain_race((r.lr, r.weight_decay, r.grokking_epoch) for r in full)
    bad = min((r.grokking_epoch, e) for e, r in enumerate(full) if (r.lr, r.weight_decay) == (lr, wd)
              and r.grokking_epoch is not None)[1]
    real, seen = train_mod.build_model, {}
    monkeypatch.setattr(train_mod, "build_model", lambda *a, **kw: seen.setdefault("model", real(*a, **kw)))

    def poison(epoch, numbers, results):
        if epoch == 1:
            with torch.no_grad():
                for p in seen["model"].parameters():
                    p[bad] = float("nan")
    results = train(compose_config(*TINY_GRID, "stop=race"), on_epoch=poison)
    assert (results[bad].status, results[bad].diverged_epoch, results[bad].grokking_epoch) == ("diverged", 2, None)
    epochs = [None if e == bad else r.grokking_epoch for e, r in enumerate(full)]
    stop, want, _ = plain_race((r.lr, r.weight_decay, g) for r, g in zip(full, epochs))
    assert stop is not None and max(r.epochs_run for r in results) == stop
    assert stop > grid_runs["raced"][1]["race"]["stopped_at"]          # the fault mattered: it raced on
    assert chosen(results) == want
    for e, (r, g) in enumerate(zip(results, epochs)):
        if e != bad:       # the others: the epochs of the run without the fault, up to the race's stop
            assert r.grokking_epoch == (g if g is not None and g <= stop else None)
            assert r.status == ("grokked" if r.grokking_epoch else "raced_out")


@pytest.mark.xdist_group("tuning-grid_runs")
def test_an_interrupted_raced_run_resumes_to_the_same_race(grid_runs, tmp_path):
    from grokmuon import checkpoint
    raced, summary = grid_runs["raced"]
    stop_after = summary["race"]["stopped_at"] // 2
    cfg = compose_config(*TINY_GRID, "stop=race")
    saver, epochs = checkpoint.Saver(tmp_path, "h", every=0), []
    cut = train(cfg, saver=saver, should_stop=lambda: len(epochs) >= stop_after,
                on_epoch=lambda e, numbers, rs: epochs.append(e))
    assert {r.status for r in cut} == {"interrupted"} and epochs == list(range(1, stop_after + 1))
    state = checkpoint.load(tmp_path / checkpoint.CHECKPOINT, "h")
    rest = train(cfg, resume=state, on_epoch=lambda e, numbers, rs: epochs.append(e))
    assert epochs == list(range(1, summary["race"]["stopped_at"] + 1))
    assert [vars(r) for r in rest] == [vars(r) for r in raced]      # every member's outcome, exactly


# --- grokmuon tune end to end -----------------------------------------------------------------------

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "grokmuon.cli", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=600)


TINY_PLAN = ("tune_seeds: [0, 1, 2]\nconfirm_seeds: [10, 11, 12, 13, 14]\nmax_extensions: 0\ngrids:\n"
             "  adamw: {lr: [0.003, 0.01], weight_decay: [0.1, 1.0]}\n"
             "  muon: {lr: [0.01, 0.05], weight_decay: [0.0, 0.15]}\n")


def tiny_tune(sweep: Path) -> list[str]:
    """The overrides of the tiny tuning runs, into sweep."""
    return ["task=modadd", "task.p=11", "model=tiny", "max_epochs=30", "batch_size=16", "grok_train_acc=0.9",
            "grok_val_acc=0.5", "device=cpu", "probes=false", f"hydra.sweep.dir={sweep}"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    plan = root / "plan.yaml"
    plan.write_text(TINY_PLAN)
    over = tiny_tune(root / "sweep")
    # One process per optimizer, side by side (as the README suggests on two cores): half the wall time.
    procs = [subprocess.Popen([sys.executable, "-m", "grokmuon.cli", "tune", "--plan", str(plan), "--optimizers",
                               opt, *over], cwd=root, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for opt in ("adamw", "muon")]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
    return root, subprocess.CompletedProcess([], 0, "".join(o for o, _ in outs), "".join(e for _, e in outs))


@pytest.mark.xdist_group("tuning-tuned")       # `grokmuon tune` runs once, on one worker
def test_tune_races_chooses_and_confirms_on_fresh_seeds(tuned):
    root, r = tuned
    folders = sorted((root / "sweep").iterdir())
    summaries = {f.name: json.loads((f / "summary.json").read_text()) for f in folders if f.is_dir()}
    configs = {n: json.loads((root / "sweep" / n / "config.json").read_text()) for n in summaries}
    assert len(summaries) == 4                    # tune and confirm, per optimizer
    for opt in ("adamw", "muon"):
        tune = next(s for n, s in summaries.items() if configs[n]["optimizer"]["name"] == opt and configs[n]["role"] == "tune")
        conf_name = next(n for n in summaries if configs[n]["optimizer"]["name"] == opt and configs[n]["role"] == "confirm")
        confirm = summaries[conf_name]
        assert len(tune["members"]) == 12 and len({(m["lr"], m["weight_decay"]) for m in tune["members"]}) == 4
        stop, choice, median = plain_race((m["lr"], m["weight_decay"], m["grokking_epoch"], m["final_val_acc"])
                                          for m in tune["members"])
        nothing = all(m["grokking_epoch"] is None for m in tune["members"])
        assert tune["race"] == {"stopped_at": stop, "chosen": {"lr": choice[0], "weight_decay": choice[1]},
                                "chosen_median": median, "rule": racing.FALLBACK if nothing else racing.RULE}
        assert {(m["lr"], m["weight_decay"]) for m in confirm["members"]} == {choice}
        assert [m["seed"] for m in confirm["members"]] == [10, 11, 12, 13, 14]
        assert configs[conf_name]["stop"] == "patience"
        assert nothing == (opt == "adamw")      # AdamW's tiny grid groks nowhere: the fallback chose it, and
        assert not nothing or choice != (0.003, 0.1)    # not its first setting, which grid order alone takes
        mean = np.mean([m["final_val_acc"] for m in tune["members"] if (m["lr"], m["weight_decay"]) == choice])
        told = median if median is not None else \
            f"none: no member grokked; the highest mean final val accuracy, {mean:.3f}" if nothing else \
            "none: fewer than half grokked anywhere"
        assert f"tune {opt}: chose lr {choice[0]:g} weight_decay {choice[1]:g} (median on the tuning seeds: " \
               f"{told})" in r.stdout
    # Muon's race stopped early; AdamW's grid grokked nowhere, so it ran to the budget and chose by the
    # highest mean final val accuracy (racing.FALLBACK).
    races = {configs[n]["optimizer"]["name"]: s["race"] for n, s in summaries.items() if configs[n]["role"] == "tune"}
    assert races["muon"]["stopped_at"] < 30 and races["adamw"]["stopped_at"] is None


@pytest.mark.xdist_group("tuning-tuned")
def test_tune_in_race_chunks_chooses_and_confirms_what_the_whole_race_did(tuned):
    """Muon's tiny race again, in two parts (--race-chunks 2: lr 0.01, then lr 0.05 stopped by the first
    part's best median): two tuning folders, the second with race_stop_by, and the same choice and
    confirmation members as the whole race of the `tuned` fixture; a re-run trains nothing."""
    root, _ = tuned
    def folders(sweep):
        out = {}
        for f in sorted(sweep.iterdir()):
            if not (f / "config.json").is_file():
                continue
            cfg = json.loads((f / "config.json").read_text())
            if cfg["optimizer"]["name"] == "muon":
                out.setdefault(cfg["role"], []).append((cfg, json.loads((f / "summary.json").read_text())))
        return out
    sweep = root / "sweep_chunks"
    args = ["tune", "--plan", root / "plan.yaml", "--optimizers", "muon", "--race-chunks", "2", *tiny_tune(sweep)]
    r = run(*args, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    whole, chunked = folders(root / "sweep"), folders(sweep)
    parts = chunked["tune"]
    assert sorted(c["grid"]["lr"] for c, _ in parts) == [[0.01], [0.05]]
    first = next(s for c, s in parts if c["grid"]["lr"] == [0.01])
    second_cfg = next(c for c, _ in parts if c["grid"]["lr"] == [0.05])
    assert second_cfg["race_stop_by"] == first["race"]["chosen_median"] is not None
    stop = min(s["race"]["stopped_at"] or 30 for _, s in parts)
    (_, whole_tune), = whole["tune"]
    by_member = {(m["seed"], m["lr"], m["weight_decay"]): m for m in whole_tune["members"]}
    cut = lambda e, t: e if e is not None and e <= t else None
    for _, s in parts:              # each part's members grokked as in the whole race, while both ran
        for m in s["members"]:
            w = by_member[(m["seed"], m["lr"], m["weight_decay"])]
            t = min(m["epochs_run"], w["epochs_run"])
            assert cut(m["grokking_epoch"], t) == cut(w["grokking_epoch"], t)
    (cw, sw), = whole["confirm"]
    (cc, sc), = chunked["confirm"]
    assert (cc["optimizer"]["lr"], cc["optimizer"]["weight_decay"]) == (cw["optimizer"]["lr"], cw["optimizer"]["weight_decay"])
    assert [m["grokking_epoch"] for m in sc["members"]] == [m["grokking_epoch"] for m in sw["members"]]
    again = run(*args, cwd=root)
    assert again.returncode == 0 and again.stdout.count("already complete") == 3, again.stdout + again.stderr
    # The report: a cost row per part, and the race stopped where its earliest part did.
    out = root / "chunks_results"
    assert run("collect", sweep, "--out", out / "runs.csv", cwd=root).returncode == 0
    rep = run("report", "--runs", out / "runs.csv", cwd=root)
    assert rep.returncode == 0, rep.stderr
    text = (out / "report.md").read_text()
    assert "| part |" in text and "| lr 0.01 × wd " in text and f"stopped at {stop} |" in text


@pytest.mark.xdist_group("tuning-tuned")
def test_tune_race_first_runs_that_part_first_and_chooses_what_the_whole_race_did(tuned):
    """--race-first 0.05,0.0 with --race-chunks 2: the lr 0.05 part runs first, unstopped, and the lr 0.01
    part after it stopped by its median; the choice and the confirmation members are the whole race's."""
    root, _ = tuned
    sweep = root / "sweep_first"
    r = run("tune", "--plan", root / "plan.yaml", "--optimizers", "muon", "--race-chunks", "2", "--race-first",
            "0.05,0.0", *tiny_tune(sweep), cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    cfgs = {f.name: (json.loads((f / "config.json").read_text()), json.loads((f / "summary.json").read_text()))
            for f in sweep.iterdir() if (f / "config.json").is_file()}
    parts = {c["grid"]["lr"][0]: (c, s) for c, s in cfgs.values() if c["role"] == "tune"}
    assert sorted(parts) == [0.01, 0.05]
    assert parts[0.05][0]["race_stop_by"] is None
    assert parts[0.01][0]["race_stop_by"] == parts[0.05][1]["race"]["chosen_median"] is not None
    whole = {c["role"]: (c, s) for c, s in (
        (json.loads((f / "config.json").read_text()), json.loads((f / "summary.json").read_text()))
        for f in (root / "sweep").iterdir() if (f / "config.json").is_file())
        if c["optimizer"]["name"] == "muon"}
    (cf, sf), (cw, sw) = next((c, s) for c, s in cfgs.values() if c["role"] == "confirm"), whole["confirm"]
    assert (cf["optimizer"]["lr"], cf["optimizer"]["weight_decay"]) == (cw["optimizer"]["lr"], cw["optimizer"]["weight_decay"])
    assert [m["grokking_epoch"] for m in sf["members"]] == [m["grokking_epoch"] for m in sw["members"]]


@pytest.mark.xdist_group("tuning-tuned")
def test_tune_result_collects_with_roles_and_reports_tuned_against_tuned(tuned, tmp_path, capsys):
    from grokmuon.cli import main
    root, _ = tuned
    out = tmp_path / "runs.csv"
    main(["collect", str(root / "sweep"), "--out", str(out)])
    import pandas as pd
    table = pd.read_csv(out)
    for col in ("task", "optimizer", "head", "seed", "lr", "weight_decay", "role", "status",
                "memorisation_epoch", "grokking_epoch"):
        assert col in table, col
    assert sorted(table["role"].unique()) == ["confirm", "tune"]
    assert len(table) == 2 * (12 + 5)
    assert set(table.loc[table.role == "tune", "seed"]).isdisjoint(table.loc[table.role == "confirm", "seed"])
    main(["report", "--runs", str(out), "--out", str(tmp_path / "report.md")])
    capsys.readouterr()
    text = (tmp_path / "report.md").read_text()
    assert "## Tuned against tuned" in text and "## Tuning races" in text and "What racing saved" in text
    assert "## Learning speed and grokking delay" in text
    assert "These are the confirmation runs" in text
    # The exact p of the confirmation runs, by brute force over every arrangement of the optimizer labels
    # among the 10 members (C(10, 5) = 252); time: the grokking epoch, else the budget (censored).
    confirm = table[table.role == "confirm"]
    time = np.where(confirm.status == "grokked", confirm.grokking_epoch.fillna(0), confirm.max_epochs)
    _, p = brute_force_p(time, confirm.status == "grokked", confirm.optimizer == "adamw", ["modadd"] * 10)
    section = text.split("## Tuned against tuned")[1].split("\n## ")[0]
    header = next(ln for ln in section.splitlines() if ln.startswith("| task |")).split("|")
    row = next(ln for ln in section.splitlines() if ln.startswith("| modadd | softmax |")).split("|")
    assert row[[h.strip() for h in header].index("exact p")].strip() == f"{p:.3g} (exact, {math.comb(10, 5)})", row
    assert f"permutation p = {p:.3g} (exact, 252)" in section


def test_tune_refuses_bad_plans_and_overrides_in_one_line(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("tune_seeds: [0, 1]\nconfirm_seeds: [1, 2]\ngrids:\n  adamw: {lr: [0.001]}\n")
    for args, needle in ((["--plan", plan], "also tuning seeds"), (["--max_epochs", "5"], "not an override"),
                         (["seeds=[1]"], "tune sets"), (["race_stop_by=5"], "tune sets"), (["task=nosuch"], "nosuch"),
                         (["--race-chunks", "0"], "--race-chunks 0"), (["--race-first", "0.01"], "--race-first 0.01"),
                         (["--race-first", "a,b"], "--race-first a,b")):
        r = run("tune", *args, cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr
    plan.write_text("tune_seeds: [0]\nconfirm_seeds: [1]\ngrids:\n  adamw: {lr: [0.001, 0.01]}\n  muon: {lr: [0.02]}\n")
    r = run("tune", "--plan", plan, cwd=tmp_path)
    assert r.returncode == 2 and "differ in size" in r.stderr


# --- bad grids --------------------------------------------------------------------------------------

@pytest.mark.parametrize("override,needle", [("grid.lr=[]", "grid.lr=[] is empty"),
                                             ("grid.lr=[0.01,-0.1]", "grid.lr"),
                                             ("grid.weight_decay=[-1.0]", "grid.weight_decay"),
                                             ("grid.lr=[0.01,0.01]", "repeats"),
                                             ("stop=sometimes", "stop='sometimes'"),
                                             ("race_stop_by=0", "race_stop_by=0"),
                                             ("race_stop_by=5", "with stop=race only")])
def test_bad_grid_values_are_refused(override, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        validate(compose_config(override))


def test_a_grid_on_a_key_that_cannot_vary_per_member_is_one_line(capsys, tmp_path):
    from grokmuon.cli import main
    with pytest.raises(SystemExit) as e:
        main(["train", "grid.batch_size=[64,128]", "model=tiny", f"hydra.run.dir={tmp_path / 'r'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "batch_size" in err[0] and "lr, weight_decay" in err[0], err


# --- identity: committed runs keep their hashes; grid members hash as their solo runs ---------------

def test_committed_runs_keep_their_config_and_member_hashes():
    folders = [p.parent for p in (REPO / "multirun").glob("*/*/summary.json")]
    assert folders, "no committed run folders to check"
    for f in folders:
        summary, cfg = json.loads((f / "summary.json").read_text()), json.loads((f / "config.json").read_text())
        assert config_hash(cfg) == summary["config_hash"], f
        assert f.name.endswith(summary["config_hash"]), f
        for m in summary["members"]:
            assert member_hash(cfg, m["seed"], m.get("lr"), m.get("weight_decay")) == m["member_hash"], f


def test_grid_member_hash_is_its_solo_runs_and_a_raced_one_is_not():
    grid = {"task": "modadd", "optimizer": {"lr": 1.0, "weight_decay": 1.0}, "seeds": [0, 1],
            "grid": {"lr": [0.1, 0.2], "weight_decay": None}, "stop": "patience"}
    solo = {**grid, "seeds": [1], "grid": {"lr": None, "weight_decay": None}, "optimizer": {"lr": 0.2, "weight_decay": 1.0}}
    assert member_hash(grid, 1, 0.2, 1.0) == config_hash(solo) == member_hash(solo, 1, 0.2, 1.0)
    raced = {**grid, "stop": "race"}
    assert member_hash(raced, 1, 0.2, 1.0) != member_hash(grid, 1, 0.2, 1.0)
    assert member_hash(raced, 1, 0.2, 1.0) != member_hash(raced, 0, 0.2, 1.0)


# --- permutation log-rank ---------------------------------------------------------------------------

def brute_force_p(time, event, group, strata):
    """Every within-stratum arrangement, each statistic from the plain-loop logrank_stratified."""
    time, event, group, strata = map(np.asarray, (time, event, group, strata))
    def z(g):
        return stats.logrank_stratified(time[g], event[g], strata[g], time[~g], event[~g], strata[~g]).statistic
    observed = z(group)
    per = []
    for s in dict.fromkeys(strata):
        idx = np.nonzero(strata == s)[0]
        per.append([(idx, c) for c in itertools.combinations(idx, int(group[idx].sum()))])
    values = []
    for choice in itertools.product(*per):
        g = np.zeros(len(group), bool)
        for _, c in choice:
            g[list(c)] = True
        values.append(z(g))
    return observed, np.mean(np.abs(values) >= abs(observed) - 1e-9)


def test_exact_permutation_logrank_equals_brute_force():
    time = [5, 9, 12, 30, 30, 7, 8, 40, 40, 11]
    event = [1, 1, 1, 0, 0, 1, 1, 0, 0, 1]
    group = [1, 1, 0, 0, 1, 0, 1, 1, 0, 0]
    strata = ["a"] * 5 + ["b"] * 5
    r = stats.logrank_permutation(time, event, np.array(group, bool), strata)
    observed, p = brute_force_p(time, event, np.array(group, bool), strata)
    assert r.exact and r.draws == 10 * 10 and r.mc_error == 0
    assert r.statistic == pytest.approx(observed) and r.p == pytest.approx(p)


def test_three_against_three_can_never_go_below_one_tenth():
    r = stats.logrank_permutation([1, 2, 3, 10, 11, 12], [1] * 6, np.array([1, 1, 1, 0, 0, 0], bool))
    assert r.exact and r.draws == 20 and r.p == pytest.approx(0.1)


def test_sampled_permutation_p_is_seeded_and_near_the_exact_one():
    rng = np.random.default_rng(3)
    time, event = rng.integers(1, 60, 24), rng.random(24) < 0.8
    group, strata = np.tile([True, False], 12), np.repeat(list("abc"), 8)
    exact = stats.logrank_permutation(time, event, group, strata, draws=10**6)
    sampled = stats.logrank_permutation(time, event, group, strata, draws=4000, seed=1)
    assert exact.exact and not sampled.exact
    assert sampled == stats.logrank_permutation(time, event, group, strata, draws=4000, seed=1)
    assert abs(sampled.p - exact.p) < 4 * sampled.mc_error + 1e-3
    assert sampled.mc_error == pytest.approx(np.sqrt(sampled.p * (1 - sampled.p) / 4000))


# --- delay ------------------------------------------------------------------------------------------

def test_delay_columns_separate_learning_speed_from_grokking_delay():
    import pandas as pd
    from grokmuon.results import finished
    table = pd.DataFrame({
        "task": "modadd", "optimizer": "muon", "head": "softmax", "seed": range(4), "run_status": "complete",
        "status": ["grokked", "grokked", "censored", "censored"], "max_epochs": 100,
        "grokking_epoch": pd.array([20, 30, None, None], dtype="Int64"),
        "memorisation_epoch": pd.array([20, 10, 40, None], dtype="Int64"),
        "epochs_run": [20, 30, 100, 100]})
    d = finished(table)
    assert list(d["delay_time"].iloc[:3]) == [0, 20, 60] and np.isnan(d["delay_time"].iloc[3])
    assert list(d["delay_event"]) == [True, True, False, False]
    assert list(d["no_delay"]) == [True, False, False, False]
    assert list(d["mem_time"]) == [20, 10, 40, 100] and list(d["mem_event"]) == [True, True, True, False]


def test_no_permutation_p_where_no_stratum_holds_both_groups():
    # stratum a: only group x; stratum b: only the other group -> nothing to compare
    r = stats.logrank_permutation([5, 9, 7, 8], [1, 1, 1, 1], np.array([1, 1, 0, 0], bool), ["a", "a", "b", "b"])
    assert np.isnan(r.p) and np.isnan(r.statistic)


def test_grid_composes_with_a_sweep(tmp_path):
    """`-m` over tasks with a grid: one ensemble per cell, each member naming its lr and weight decay."""
    r = run("train", "-m", "experiment=smoke", "grid.lr=[0.001,0.003]", "grid.weight_decay=[0.5]",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    folders = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir()]
    assert len(folders) == 4
    for f in folders:
        members = json.loads((f / "summary.json").read_text())["members"]
        assert [(m["seed"], m["lr"], m["weight_decay"]) for m in members] == \
            [(0, 0.001, 0.5), (1, 0.001, 0.5), (0, 0.003, 0.5), (1, 0.003, 0.5)]
        header = (f / "metrics.csv").read_text().splitlines()[0].split(",")
        assert header[:5] == ["epoch", "member", "seed", "lr", "weight_decay"]


def test_plateau_flags_a_member_stuck_far_below_fitting_not_a_slow_one():
    import pandas as pd
    from grokmuon.results import on_plateau
    epochs = np.arange(1, 101)
    flat = pd.DataFrame({"epoch": epochs, "train_acc": 0.4 + 0.01 * np.sin(epochs)})
    climbing = pd.DataFrame({"epoch": epochs, "train_acc": epochs / 120})
    near_miss = pd.DataFrame({"epoch": epochs, "train_acc": np.full(100, 0.988)})
    censored = {"memorisation_epoch": None, "status": "censored"}
    assert on_plateau(flat, censored, 0.99)
    assert not on_plateau(climbing, censored, 0.99)
    assert not on_plateau(near_miss, censored, 0.99)
    assert not on_plateau(flat.head(30), censored, 0.99)                        # too short to say
    assert not on_plateau(flat, {"memorisation_epoch": 5, "status": "censored"}, 0.99)


def committed_cell(name: str) -> Path:
    """A committed heads_tuned run folder, wherever it is now: lanes 3 and 4 move those at a moved choice."""
    for sweep in ("heads_tuned", "heads_tuned_superseded"):
        if (REPO / "multirun" / sweep / name).is_dir():
            return REPO / "multirun" / sweep / name
    raise FileNotFoundError(name)


@pytest.mark.parametrize("lane, opt, old, moved_task", [
    ("3", "adamw", "gcd-adamw-stablemax-dcf4d347", "gcd"),          # at wd 0.3; gcd AdamW's choice is now 0.027
    ("4", "muon", "modadd-muon-stablemax-f9ece54d", "modadd")])     # at wd 0.15; modadd Muon's is now 0.45
def test_lanes_3_and_4_run_each_task_at_its_one_confirmation_and_retire_cells_of_an_earlier_choice(
        lane, opt, old, moved_task, tmp_path):
    # scripts/study.sh lanes 3-4 run the other heads at "each task's tuned setting", read from the
    # committed confirmation runs (a slip would put those heads at a setting no race chose). In a copy of
    # the script beside the committed confirmations' configs, with a stand-in grokmuon that logs each
    # call and whether the old cell is still in the sweep: the lane trains each task at the optimizer's
    # confirmed setting, and the cell at the choice the re-tuning moved away from leaves before that
    # task's training.
    import shutil
    import subprocess
    sweep = tmp_path / "multirun" / "heads_tuned"
    script = study_copy(tmp_path, python=True,
                        grokmuon=f'echo "$* $([ -d {sweep / old} ] && echo old-there)" >> {tmp_path}/calls')
    chosen = {}
    for path in (REPO / "multirun" / "tune").glob("*/config.json"):
        cfg = json.loads(path.read_text())
        if cfg["role"] == "confirm":
            (tmp_path / "multirun" / "tune" / path.parent.name).mkdir(parents=True)
            shutil.copy(path, tmp_path / "multirun" / "tune" / path.parent.name / "config.json")
            chosen[(cfg["task"]["name"], cfg["optimizer"]["name"])] = (cfg["optimizer"]["lr"], cfg["optimizer"]["weight_decay"])
    assert len(chosen) == 14                                 # 7 tasks x 2 optimizers, one confirmation each
    shutil.copytree(committed_cell(old), sweep / old)
    run = subprocess.run(["bash", str(script), lane], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    tasks = ["gcd", "modadd", "moddiv", "modmul", "modsub", "modexp", "parity"]
    assert [c.strip() for c in calls] == [
        f"train -m experiment=heads_tuned task={t} optimizer={opt} optimizer.lr={chosen[(t, opt)][0]} "
        f"optimizer.weight_decay={chosen[(t, opt)][1]}" + (" old-there" if tasks.index(t) < tasks.index(moved_task) else "")
        for t in tasks]
    assert not (sweep / old).exists() and (tmp_path / "multirun" / "heads_tuned_superseded" / old / "summary.json").exists()


def test_the_heads_cells_of_a_moved_choice_leave_the_sweep_and_the_others_stay(tmp_path, capsys):
    # gcd's committed heads_tuned cells: AdamW's at wd 0.3, the choice its re-tuning moved to 0.027, and
    # Muon's at its standing choice. retire_cells moves AdamW's (whole, an interrupted one too) and nothing
    # of Muon's; a cell another live process is training stays; at the standing choice nothing moves.
    import os
    import shutil
    import socket

    from grokmuon import tune
    sweep = tmp_path / "heads_tuned"
    names = ["gcd-adamw-sparsemax-90f7f569", "gcd-adamw-stablemax-dcf4d347", "gcd-muon-sparsemax-963ffc1e"]
    for name in names:
        shutil.copytree(committed_cell(name), sweep / name)
    summary = json.loads((sweep / names[0] / "summary.json").read_text())
    for name, state in (("gcd-adamw-softmax-0000000a", {"status": "interrupted"}),
                        ("gcd-adamw-softmax-0000000b", {"status": "running", "host": socket.gethostname(),
                                                        "pid": os.getppid()})):
        shutil.copytree(sweep / names[0], sweep / name)
        (sweep / name / "summary.json").write_text(json.dumps({**summary, **state}))
    assert tune.retire_cells(sweep, "gcd", "adamw", 0.003, 0.3) == []                  # the standing choice
    assert tune.retire_cells(sweep, "gcd", "adamw", 0.003, 0.027, batch_size=128) == []  # another batch size's
    files = sorted(p.relative_to(sweep / names[1]) for p in (sweep / names[1]).rglob("*"))
    moved = tune.retire_cells(sweep, "gcd", "adamw", 0.003, 0.027)
    home = tmp_path / "heads_tuned_superseded"
    assert moved == [home / "gcd-adamw-softmax-0000000a", home / names[0], home / names[1]]
    assert sorted(p.name for p in sweep.iterdir()) == ["gcd-adamw-softmax-0000000b", names[2]]
    assert sorted(p.relative_to(moved[2]) for p in moved[2].rglob("*")) == files       # nothing lost
    readme = (home / "README.md").read_text()
    assert readme.count("\n- ") == 3 and ("`gcd-adamw-stablemax-dcf4d347`: adamw on gcd with stablemax at lr 0.003, "
                                          "weight decay 0.3, complete (the tuned choice is now 0.003, 0.027)") in readme
    assert "moved to" in capsys.readouterr().out
    assert tune.retire_cells(sweep, "gcd", "muon", 0.02, 0.15) == []


def test_the_confirmed_setting_is_the_one_confirmation_not_an_earlier_attempt_nor_another_batch(tmp_path, capsys):
    import shutil

    from grokmuon import tune
    conf = "modadd-muon-softmax-a1780495"                    # Muon's modadd confirmation: lr 0.02, wd 0.45
    shutil.copytree(REPO / "multirun" / "tune" / conf, tmp_path / conf)
    aside = tmp_path / f"{conf}.incomplete-20260101-000000"  # an earlier attempt's files at another setting
    aside.mkdir()
    cfg = json.loads((tmp_path / conf / "config.json").read_text())
    (aside / "config.json").write_text(json.dumps({**cfg, "optimizer": {**cfg["optimizer"], "weight_decay": 0.15}}))
    assert tune.confirmed_setting(tmp_path, "modadd", "muon", 512) == (0.02, 0.45)
    for task, batch in (("modadd", 128), ("gcd", 512)):
        with pytest.raises(SystemExit) as e:
            tune.confirmed_setting(tmp_path, task, "muon", batch)
        assert e.value.code == 1
        assert capsys.readouterr().err.strip() == (f"grokmuon: error: 0 confirmation settings for {task} muon at batch "
                                                   f"{batch} in {tmp_path}; need one")


def test_retiring_cells_with_bad_arguments_is_one_line(capsys):
    from grokmuon import tune
    with pytest.raises(SystemExit) as e:
        tune.retire_cells_main(["multirun/heads_tuned", "gcd", "adamw", "0.003"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "grokmuon: error: retire_cells: give SWEEP TASK OPTIMIZER LR WEIGHT_DECAY (got 'multirun/heads_tuned gcd adamw 0.003')"]


def test_a_moved_choice_moves_its_old_confirmation_out_of_the_sweep_and_collect_skips_it(tmp_path, capsys):
    # gcd AdamW's confirmation at wd 0.3, which its re-tuning moved to 0.027 (committed, moved by hand to
    # multirun/tune_superseded), beside the new one, Muon's, and AdamW's races: only the old AdamW
    # confirmation is superseded; it moves whole to tune_superseded/, and collect then finds one per arm.
    import shutil

    from grokmuon import tune
    from grokmuon.results import collect
    sweep = tmp_path / "tune"
    sweep.mkdir()
    for src in ("tune/gcd-adamw-softmax-399d4935", "tune_superseded/gcd-adamw-softmax-32ecb3e8",
                "tune/gcd-muon-softmax-6c46206b", "tune/gcd-adamw-softmax-b1029187", "tune/gcd-adamw-softmax-3d656629"):
        shutil.copytree(REPO / "multirun" / src, sweep / Path(src).name)
    new, old = sweep / "gcd-adamw-softmax-399d4935", sweep / "gcd-adamw-softmax-32ecb3e8"
    assert tune.superseded(new) == [old]
    assert tune.superseded(sweep / "gcd-muon-softmax-6c46206b") == []       # Muon has one confirmation
    files = sorted(p.relative_to(old) for p in old.rglob("*"))
    [dest] = tune.retire(new, "adamw")
    assert not old.exists() and dest == tmp_path / "tune_superseded" / old.name
    assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == files    # nothing lost
    assert "confirmed an earlier choice (lr 0.003, weight_decay 0.3)" in capsys.readouterr().out
    assert ("`gcd-adamw-softmax-32ecb3e8`: adamw on gcd at lr 0.003, weight decay 0.3 (now 0.003, 0.027: "
            "`gcd-adamw-softmax-399d4935`)") in (dest.parent / "README.md").read_text()
    confirms = collect([sweep]).query("role == 'confirm'").drop_duplicates("run_dir")
    assert sorted(confirms.optimizer) == ["adamw", "muon"] and (confirms.weight_decay != 0.3).all()
    assert tune.retire(new, "adamw") == []                                   # a re-run moves nothing more


def test_only_a_confirmation_that_lost_in_these_races_and_only_to_a_complete_one_is_moved(tmp_path):
    # The same two gcd AdamW confirmations. (a) The races of this tuning never tried the old setting
    # (another plan's choice): it stays. (b) The new confirmation is still running (another process
    # trains it): nothing moves yet. (c) The old setting was raced and lost, the new one is complete: it moves.
    import shutil

    from grokmuon import tune
    sweep = tmp_path / "tune"
    sweep.mkdir()
    for src in ("tune/gcd-adamw-softmax-399d4935", "tune_superseded/gcd-adamw-softmax-32ecb3e8"):
        shutil.copytree(REPO / "multirun" / src, sweep / Path(src).name)
    new, old = sweep / "gcd-adamw-softmax-399d4935", sweep / "gcd-adamw-softmax-32ecb3e8"
    assert tune.retire(new, "adamw", raced={(0.003, 0.027), (0.01, 0.027)}) == [] and old.exists()   # (a)
    summary = json.loads((new / "summary.json").read_text())
    (new / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    assert tune.retire(new, "adamw", raced={(0.003, 0.027), (0.003, 0.3)}) == [] and old.exists()    # (b)
    (new / "summary.json").write_text(json.dumps(summary))
    assert tune.retire(new, "adamw", raced={(0.003, 0.027), (0.003, 0.3)}) == [tmp_path / "tune_superseded" / old.name]
    assert not old.exists()                                                                          # (c)


def test_tuning_races_judge_members_by_the_first_crossing_under_the_near_max_rule():
    """A race stops and chooses on the first crossing (the near-max epoch is known only after the run),
    so *Tuning races* shows that one, while the confirmation tables judge by the near-max epoch."""
    import pandas as pd
    from grokmuon.report_tuning import tuning_table
    from grokmuon.results import finished
    rows = [dict(task="moddiv", head="softmax", optimizer="adamw", lr=lr, weight_decay=0.1, seed=seed, role="tune",
                 grok_rule="near_max", grokking_epoch=first, grokking_epoch_near_max=near, memorisation_epoch=first,
                 status="grokked" if first else "raced_out", epochs_run=30, max_epochs=300, wall_s=60.0,
                 final_val_acc=0.9)
            for lr, eps in {0.001: [(20, 80), (22, None), (None, None)], 0.003: [(25, 26), (27, 28), (None, None)]}.items()
            for seed, (first, near) in enumerate(eps)]
    done = finished(pd.DataFrame(rows))
    assert done["grokked"].sum() == 3                        # the near-max rule: 80, 26 and 28
    text = tuning_table(done)
    assert "| moddiv | softmax | adamw | 0.001 | 0.1 | 3 | 2 | 1 | 22 |" in text     # first crossings 20, 22
    assert "| moddiv | softmax | adamw | 0.003 | 0.1 | 3 | 2 | 1 | 27 |" in text


def test_each_batch_size_is_its_own_tuning_cell_in_the_report():
    """`grokmuon tune` run once per condition (experiment=outside: width x batch size, or tune_batch
    collected beside tune) races and confirms each on its own: the report gives each condition its own
    row, chosen setting, race and compute, never one row that mixes two races (it did, before)."""
    import pandas as pd
    from grokmuon.report_tuning import compute_table, tuned_section, tuning_table
    from grokmuon.results import finished
    chosen = {(512, "adamw"): 0.003, (512, "muon"): 0.02, (128, "adamw"): 0.001, (128, "muon"): 0.01}
    rows = []
    for (batch, opt), best in chosen.items():
        stop = 30 if batch == 512 else 40
        for lr in (best, best * 3):             # the chosen lr groks by the stop on every seed, the other on none
            rows += [dict(task="modadd", head="softmax", optimizer=opt, batch_size=batch, d_model=64, lr=lr,
                          weight_decay=0.1, seed=seed, role="tune", grokking_epoch=stop - seed if lr == best else None,
                          memorisation_epoch=10, status="grokked" if lr == best else "raced_out", epochs_run=stop,
                          max_epochs=300, wall_s=3600.0 * batch / 512, final_val_acc=0.9, run_dir=f"tune-{batch}-{opt}")
                 for seed in range(3)]
        rows += [dict(task="modadd", head="softmax", optimizer=opt, batch_size=batch, d_model=64, lr=best,
                      weight_decay=0.1, seed=seed, role="confirm", grokking_epoch=stop + seed + (opt == "adamw") * 9,
                      memorisation_epoch=10, status="grokked", epochs_run=stop + 15, max_epochs=300, wall_s=360.0,
                      final_val_acc=1.0, run_dir=f"confirm-{batch}-{opt}") for seed in range(100, 105)]
    everything = finished(pd.DataFrame(rows))
    tune, confirm = everything[everything.role == "tune"], everything[everything.role == "confirm"]
    text = tuned_section(tune, confirm)
    for batch in (512, 128):
        a, m = chosen[batch, "adamw"], chosen[batch, "muon"]
        stop = 30 if batch == 512 else 40
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| modadd | softmax | {batch} |")), None)
        assert row is not None, text
        assert f"| lr {a:g}, wd 0.1 | 2 settings × 3 seeds, stopped at {stop} | 5/5 |" in row, row
        assert f"| lr {m:g}, wd 0.1 | 2 settings × 3 seeds, stopped at {stop} | 5/5 |" in row, row
    assert "stratified by task, head and batch_size" in text
    races = tuning_table(tune)
    assert "| task | head | batch_size | optimizer | lr |" in races
    assert "| modadd | softmax | 128 | muon | 6 | 40 | 300 |" in races    # a race a condition: 2 settings x 3 seeds
    cost = compute_table(everything)
    assert "| modadd | softmax | 128 | adamw | 0.25 | 0.10 | 0.35 |" in cost      # its race's folder + its confirmation's
    assert "| all |  |  | adamw | 1.25 | 0.20 | 1.45 |" in cost                     # both conditions
    # Each condition's lr was chosen there, not scanned: no *By scanned value*, no scan figure of lr; the
    # tuning members, two lrs at one batch size, are a scan.
    from grokmuon.results import condition_axes, scanned_axes
    assert condition_axes(confirm) == ["batch_size"] and scanned_axes(confirm) == []
    assert scanned_axes(tune) == ["lr"]
    # Part-way: batch 128 raced, its confirmations not run yet. Its race stays its own, not batch 512's.
    text = tuned_section(tune, confirm[confirm.batch_size == 512])
    row = next((ln for ln in text.splitlines() if ln.startswith("| modadd | softmax | 512 |")), None)
    assert row is not None and "| 2 settings × 3 seeds, stopped at 30 |" in row, text
    assert "| modadd | softmax | 128 |" not in text
    # No condition, one task, two heads: no *all* rows (nothing to add up across tasks or conditions)
    one = everything[everything.batch_size == 512]
    heads = pd.concat([one, one.assign(head="stablemax", run_dir=one.run_dir + "-s")], ignore_index=True)
    assert "| all |" not in compute_table(heads) and "| all |" in compute_table(everything)
