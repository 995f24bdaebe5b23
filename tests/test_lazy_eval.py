"""The evaluation's fast paths change no number. eval_train=lazy: the train split is measured only where a
grokking or memorisation epoch can fall, and every such epoch, every val number and every measured train
number equals the eval_train=every run. eval_chunk and train_chunk: any chunking gives the same numbers.
The trainer's epochs are grokmuon.metrics' rule applied to the curves its metrics.csv records."""
from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from grokmuon import metrics
from grokmuon.results import read_run
from grokmuon.runfolder import BadRun, RunLog, check_metrics
from grokmuon.train import Data, MemberResult, build_model, evaluate, evaluate_split, needs_train, train

from conftest import compose_config

# modadd mod 11 with lowered thresholds: the members memorise at epochs 17-24 and grok at 18-24.
LAZY_RUN = ("task=modadd", "task.p=11", "optimizer=muon", "seeds=[0,1,2,3]", "max_epochs=40", "batch_size=16",
            "patience=5", "grok_train_acc=0.9", "grok_val_acc=0.5", "eval_train_every=7")


def recorded(cfg, log=None):
    rows = []

    def on_epoch(epoch, numbers, results):
        rows.append((epoch, {k: list(v) for k, v in numbers.items()}))
        if log is not None:
            log.log_epoch(epoch, numbers, results)
    results = train(cfg, on_epoch=on_epoch)
    if log is not None:
        log.finish(results)
    return results, rows


@pytest.fixture(scope="module")
def every_and_lazy(tmp_path_factory):
    """LAZY_RUN with eval_train every and lazy, each written to a run folder as `grokmuon train` writes it:
    {mode: (results, rows, folder)}."""
    out = {}
    for mode in ("every", "lazy"):
        cfg = compose_config(*LAZY_RUN, f"eval_train={mode}")
        folder = tmp_path_factory.mktemp(mode)
        log = RunLog(folder, OmegaConf.to_container(cfg, resolve=True), "cpu")
        out[mode] = (*recorded(cfg, log), folder)
    return out


@pytest.mark.xdist_group("lazy_eval-every_and_lazy")   # the two runs train once, on one worker
def test_lazy_gives_the_same_epochs_and_numbers_and_skips_train_evaluations(every_and_lazy):
    every, every_rows, _ = every_and_lazy["every"]
    lazy, lazy_rows, _ = every_and_lazy["lazy"]
    assert any(r.grokking_epoch for r in every), "the run must grok for the comparison to mean anything"
    for a, b in zip(every, lazy):
        assert (a.memorisation_epoch, a.grokking_epoch, a.status, a.epochs_run) == \
               (b.memorisation_epoch, b.grokking_epoch, b.status, b.epochs_run)
        assert a.final == pytest.approx(b.final, abs=1e-6)           # the last epoch measures the train split
    assert [e for e, _ in every_rows] == [e for e, _ in lazy_rows]
    skipped = []
    for (epoch, a), (_, b) in zip(every_rows, lazy_rows):
        assert b["val_acc"] == pytest.approx(a["val_acc"], abs=1e-6)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
        if math.isnan(b["train_acc"][0]):
            skipped.append(epoch)
            assert all(math.isnan(x) for x in b["train_acc"] + b["train_loss"])
        else:
            assert b["train_acc"] == pytest.approx(a["train_acc"], abs=1e-6)
            assert b["logit_scale"] == pytest.approx(a["logit_scale"], rel=1e-5)
    last_memorised = max(r.memorisation_epoch for r in every)
    assert skipped, "lazy evaluation skipped no epoch: nothing was saved"
    assert min(skipped) > last_memorised           # every member fitted before the first skip
    assert not any(e % 7 == 0 for e in skipped)      # the curve's points every eval_train_every epochs


def test_needs_train_follows_its_rule():
    cfg = SimpleNamespace(eval_train_every=10, max_epochs=100, grok_val_acc=0.95, patience=2)
    fitted = MemberResult(seed=0, memorisation_epoch=5)
    assert not needs_train([fitted], [0.5], 13, cfg)
    assert needs_train([fitted], [0.95], 13, cfg)                           # it may grok now
    assert needs_train([MemberResult(seed=1)], [0.1], 13, cfg)               # not yet memorised
    assert needs_train([fitted], [0.1], 20, cfg) and needs_train([fitted], [0.1], 100, cfg)
    grokked = MemberResult(seed=0, memorisation_epoch=5, grokking_epoch=11)
    assert needs_train([grokked], [0.99], 13, cfg) and not needs_train([grokked], [0.99], 14, cfg)
    stopped = MemberResult(seed=1, status="diverged")                        # stopped members ask for nothing
    assert not needs_train([fitted, stopped], [0.1, math.nan], 13, cfg)


@pytest.mark.xdist_group("lazy_eval-every_and_lazy")
@pytest.mark.parametrize("mode", ["every", "lazy"])
def test_each_members_epochs_are_the_rule_applied_to_its_recorded_curves(every_and_lazy, mode):
    """summary.json's epochs, member by member, against grokmuon.metrics on metrics.csv's curves (a blank
    train cell, not measured, read as NaN); and the run stops at the last grokking epoch + patience."""
    folder = every_and_lazy[mode][2]
    cfg = json.loads((folder / "config.json").read_text())
    members = json.loads((folder / "summary.json").read_text())["members"]
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for m in members:
        mine = [r for r in rows if int(r["member"]) == m["member"]]
        assert [int(r["epoch"]) for r in mine] == list(range(1, m["epochs_run"] + 1))
        train_acc = [float(r["train_acc"]) if r["train_acc"] != "" else math.nan for r in mine]
        val_acc = [float(r["val_acc"]) for r in mine]
        assert m["memorisation_epoch"] == metrics.memorisation_epoch(train_acc, cfg["grok_train_acc"]), m
        assert m["grokking_epoch"] == metrics.grokking_epoch(train_acc, val_acc, cfg["grok_val_acc"],
                                                             cfg["grok_train_acc"]), m
    grokked = [m["grokking_epoch"] for m in members]
    assert all(grokked) and len(set(grokked)) > 1, grokked      # epochs to compare, and not all the same
    assert {m["epochs_run"] for m in members} == {max(grokked) + cfg["patience"]} and max(grokked) + 5 < 40
    assert (mode == "lazy") == any(r["train_acc"] == "" for r in rows)


@pytest.mark.xdist_group("lazy_eval-every_and_lazy")
def test_a_lazy_run_folder_collects_and_a_blank_in_an_every_run_is_refused(every_and_lazy):
    run_dir = every_and_lazy["lazy"][2]
    rows = read_run(run_dir)
    assert len(rows) == 4 and any(r["grokking_epoch"] for r in rows)
    members = [{"member": r["member"], "epochs_run": r["epochs_run"]} for r in rows]
    with pytest.raises(BadRun, match="blank"):      # the same file is damaged for a run that measures every epoch
        check_metrics(run_dir, members, complete=True)


def test_evaluation_numbers_do_not_depend_on_the_chunk(compose_cfg):
    cfg = compose_cfg("task=modadd", "task.p=23", "seeds=[0,1,2]")
    cpu = torch.device("cpu")
    data, model = Data(cfg, [0, 1, 2], cpu), build_model(cfg, [0, 1, 2], cpu)
    runs = []
    for chunk in (0, 7, 100_000):                   # auto, many small forwards, one forward
        cfg.eval_chunk = chunk
        runs.append((evaluate(model, data, cfg, cpu), evaluate_split(model, data, cfg, cpu, data.val_rows, "val")))
    (full, split), *others = runs
    assert torch.equal(full["val_acc"], split["val_acc"])   # the lazy path's val split, rows in another order
    for f, s in others:
        for k in full:
            torch.testing.assert_close(f[k], full[k], rtol=1e-5, atol=1e-6)
        assert torch.equal(f["train_acc"], full["train_acc"]) and torch.equal(s["val_acc"], split["val_acc"])


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_training_in_member_groups_changes_no_number(compose_cfg, optimizer):
    """train_chunk: members trained in groups of 1, 4 or all at once give the same numbers and epochs."""
    run = ("task=modadd", "task.p=13", f"optimizer={optimizer}", "seeds=[0,1,2,3,4,5]", "max_epochs=4",
           "batch_size=32", "model.n_layers=2", "model.dropout=0.1", "patience=0")
    base, base_rows = recorded(compose_cfg(*run, "train_chunk=6"))
    for chunk in (1, 4):
        results, rows = recorded(compose_cfg(*run, f"train_chunk={chunk}"))
        assert [vars(r)["grokking_epoch"] for r in results] == [vars(r)["grokking_epoch"] for r in base]
        for (_, a), (_, b) in zip(base_rows, rows):
            for k in ("train_loss", "val_loss", "train_acc", "val_acc"):
                assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), (chunk, k)
    assert base_rows[-1][1]["train_loss"] != base_rows[0][1]["train_loss"]     # it trained


def test_member_groups_follow_the_device_and_the_batch():
    from grokmuon.model import MaskStream
    from grokmuon.train import member_groups
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    auto = SimpleNamespace(get=lambda k, d=None: 0)
    assert member_groups(36, 512, auto, cpu, []) == [slice(lo, min(lo + 8, 36)) for lo in range(0, 36, 8)]
    assert member_groups(3, 128, auto, cpu, []) == [slice(0, 3)]
    assert member_groups(36, 512, auto, cuda, []) == [slice(0, 36)]
    assert member_groups(36, 512, auto, cpu, MaskStream([0])) == [slice(0, 36)]
