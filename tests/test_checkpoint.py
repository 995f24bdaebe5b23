"""Checkpoints: a resumed run equals an uninterrupted one; damaged or foreign checkpoints are refused in one
line and the cell starts over; final weights load without the trainer; what is kept on disk."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from omegaconf import OmegaConf

from grokmuon import checkpoint
from grokmuon.train import train
from conftest import compose_config

RUN = ["task=modadd", "task.p=13", "batch_size=32", "model.n_layers=2", "seeds=[3,4]", "max_epochs=8",
       "patience=0"]


def history(cfg, rows=None, **kw):
    rows = [] if rows is None else rows
    results = train(cfg, on_epoch=lambda e, numbers, _: rows.append((e, {k: list(v) for k, v in numbers.items()})), **kw)
    return results, rows


@pytest.mark.parametrize("optimizer,chunk", [("muon", 0), ("adamw", 0), ("adamw", 3)])
def test_resumed_run_equals_the_uninterrupted_one(tmp_path, optimizer, chunk):
    """chunk 3: the 4 members train in two groups (train_chunk), and the checkpoint still holds every
    member's generator (a group's list once stood in for all of them)."""
    cfg = compose_config(*RUN, f"optimizer={optimizer}", "grid.weight_decay=[0.0,0.5]", f"train_chunk={chunk}")
    full_results, full = history(cfg)
    saver = checkpoint.Saver(tmp_path, "h", every=0)
    stop_after = 3
    cut = []
    cut_results, _ = history(cfg, cut, saver=saver, should_stop=lambda: len(cut) >= stop_after)
    assert [r.status for r in cut_results] == ["interrupted"] * 4
    state = checkpoint.load(tmp_path / checkpoint.CHECKPOINT, "h")
    assert state["epoch"] == stop_after
    rest_results, rest = history(cfg, resume=state)
    assert [e for e, _ in rest] == list(range(stop_after + 1, 9))
    assert cut + rest == full                                    # every number of every epoch, exactly
    assert [vars(r) for r in rest_results] == [vars(r) for r in full_results]


def test_a_checkpoint_is_due_once_its_minutes_have_passed_since_the_last_save(tmp_path):
    # A clock that reads what the test sets: due at the first epoch end 10 minutes after the last save,
    # not before; a save restarts the count; 0 minutes never fires; epochs and minutes each fire alone.
    now = [0.0]
    saver = checkpoint.Saver(tmp_path, "h", minutes=10, clock=lambda: now[0])
    now[0] = 599.0
    assert not saver.due(3)
    now[0] = 600.0
    assert saver.due(4)
    saver.save({"epoch": 4})
    now[0] = 1100.0
    assert not saver.due(5)                                   # 500 s since the save
    now[0] = 1200.0
    assert saver.due(6)
    assert not checkpoint.Saver(tmp_path, "h", minutes=0, clock=lambda: 1e9).due(7)
    assert checkpoint.Saver(tmp_path, "h", every=5, minutes=10, clock=lambda: 0.0).due(10)


def test_runs_default_to_saving_on_the_clock_and_it_moves_no_hash():
    # The default is 10 minutes, and, being no result, the setting changes no hash:
    # a config that sets it to anything else hashes as one that does not.
    from grokmuon.runid import config_hash
    cfg = compose_config(*RUN)
    assert cfg.checkpoint_minutes == 10
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert config_hash({**plain, "checkpoint_minutes": 0.5}) == config_hash(plain)


def test_periodic_checkpoints_and_what_is_left_at_the_end(tmp_path):
    cfg = compose_config(*RUN)
    seen = []
    saver = checkpoint.Saver(tmp_path, "h", every=2, info={"task": {"name": "modadd"}})
    real_save = saver.save
    saver.save = lambda state: (seen.append(state["epoch"]), real_save(state))
    train(cfg, saver=saver)
    assert seen == [2, 4, 6]                                      # not at the last epoch: the run ends there
    assert not (tmp_path / checkpoint.CHECKPOINT).exists()        # a complete run keeps no optimizer state
    assert (tmp_path / checkpoint.WEIGHTS).exists()
    no_weights = tmp_path / "none"
    no_weights.mkdir()
    train(cfg, saver=checkpoint.Saver(no_weights, "h", keep_weights=False))
    assert list(no_weights.iterdir()) == []


def test_final_weights_rebuild_a_member_without_the_trainer(tmp_path):
    cfg = compose_config(*RUN)
    from grokmuon.config import members
    info = {"task": {"name": "modadd", "p": 13, "n_bits": 10}, "members": members(cfg)}
    seen = {}
    saver = checkpoint.Saver(tmp_path, "h", info=info)
    real_end = saver.end
    saver.end = lambda model: (seen.setdefault("model", model), real_end(model))
    train(cfg, saver=saver)
    model, got = checkpoint.load_member(tmp_path / checkpoint.WEIGHTS, member=1)
    assert got["member"] == (4, cfg.optimizer.lr, cfg.optimizer.weight_decay)
    from grokmuon.tasks import make_task
    x, _ = make_task("modadd", 13, 10)
    ens = seen["model"].eval()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x)[0], ens(x)[1])


def test_damaged_or_foreign_checkpoints_are_refused(tmp_path):
    path = tmp_path / checkpoint.CHECKPOINT
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="unreadable"):
        checkpoint.load(path, "h")
    checkpoint.atomic_save({"format": checkpoint.FORMAT, "config_hash": "other"}, path)
    with pytest.raises(checkpoint.CheckpointError, match="not this run's h"):
        checkpoint.load(path, "h")
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])                      # truncated
    with pytest.raises(checkpoint.CheckpointError, match="unreadable"):
        checkpoint.load(path, "h")


# --- through the CLI: Ctrl-C, re-run resumes; a damaged checkpoint starts over ------------------------

ARGS = ["-m", "task=modadd", "task.p=23", "model=tiny", "logger=none", "progress=false", "device=cpu",
        "seeds=[0,1]", "max_epochs=24", "checkpoint_every=5", "probes=false"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
CTRL_C_AT = 12          # after a periodic checkpoint (10), before the end: the interruption saves its own
# `grokmuon train` that sends itself Ctrl-C once epoch CTRL_C_AT is written: a real signal at a known
# epoch, with no clock to wait on.
CTRL_C_AFTER = textwrap.dedent(f"""
    import os, signal, sys
    import grokmuon.runfolder as runfolder
    real = runfolder.RunLog.log_epoch
    def log_epoch(self, epoch, numbers, results):
        real(self, epoch, numbers, results)
        if epoch == {CTRL_C_AT}:
            os.kill(os.getpid(), signal.SIGINT)
    runfolder.RunLog.log_epoch = log_epoch
    from grokmuon.cli import main
    main(sys.argv[1:])
""")


def grokmuon(*args, **kw):
    return subprocess.run([sys.executable, "-m", "grokmuon", "train", *ARGS, *args], env=ENV,
                          capture_output=True, text=True, timeout=600, **kw)


def interrupted_cell(sweep):
    proc = subprocess.run([sys.executable, "-c", CTRL_C_AFTER, "train", *ARGS, f"hydra.sweep.dir={sweep}"],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 130, proc.stderr[-3000:]
    (cell,) = [p for p in sweep.glob("modadd-*")]
    assert (cell / checkpoint.CHECKPOINT).exists()
    assert json.loads((cell / "summary.json").read_text())["members"][0]["epochs_run"] == CTRL_C_AT
    return cell


def test_a_rerun_resumes_an_interrupted_cell_and_says_so(tmp_path):
    cell = interrupted_cell(tmp_path / "sweep")
    r = grokmuon(f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert r.returncode == 0, r.stderr
    assert f"resuming from its checkpoint after epoch {CTRL_C_AT}" in r.stderr
    summary = json.loads((cell / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["resumed_from"]["epoch"] == CTRL_C_AT
    # The same numbers as an uninterrupted run of the same config, written in this process.
    from omegaconf import OmegaConf

    from grokmuon.runfolder import RunLog
    cfg = compose_config(*[a for a in ARGS if a != "-m"], shrink=False)
    log = RunLog(tmp_path / "fresh", OmegaConf.to_container(cfg, resolve=True), "cpu")
    log.finish(train(cfg, on_epoch=log.log_epoch))
    import csv
    numbers = lambda p: [{k: v for k, v in row.items() if k != "wall_s"}                     # noqa: E731
                         for row in csv.DictReader(open(p / "metrics.csv"))]
    assert len(numbers(cell)) == 2 * 24 and numbers(cell) == numbers(tmp_path / "fresh")


def test_a_damaged_checkpoint_starts_the_cell_over_in_one_line(tmp_path):
    cell = interrupted_cell(tmp_path / "sweep")
    (cell / checkpoint.CHECKPOINT).write_bytes(b"garbage")
    r = grokmuon(f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert r.returncode == 0, r.stderr
    note = [ln for ln in r.stderr.splitlines() if "checkpoint cannot be used" in ln]
    assert len(note) == 1 and "training again from epoch 1" in note[0]
    summary = json.loads((cell / "summary.json").read_text())
    assert summary["status"] == "complete" and "resumed_from" not in summary
    assert any(p.name.startswith(cell.name + ".incomplete-") for p in cell.parent.iterdir())   # kept, not lost
