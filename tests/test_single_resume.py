"""A stopped single run resumes: `grokmuon train <overrides>` (no -m) run again after Ctrl-C continues the
interrupted run in its own folder, from its checkpoint (docs/robustness.md); which folder a re-run
picks, and why it starts a new one instead."""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from grokmuon.runfolder import interrupted_run, is_set_aside
from grokmuon.runid import config_hash

from conftest import cli_env, grokmuon_exe
from runfolders import config, write_run

# Small and quick, yet long enough to be stopped midway: the re-run trains the rest to the budget.
ARGS = ["train", "model=tiny", "task=parity", "task.n_bits=6", "batch_size=16", "patience=1000",
        "max_epochs=150", "seeds=[0,1]", "logger=none", "progress=false", "device=cpu"]


def epochs(folder: Path) -> dict[int, list[int]]:
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {m: [int(r["epoch"]) for r in rows if int(r["member"]) == m] for m in (0, 1)}


def test_ctrl_c_then_the_same_command_continues_the_run_in_its_folder(tmp_path):
    root = tmp_path / "outputs" / "parity-muon-softmax"
    proc = subprocess.Popen([grokmuon_exe(), *ARGS], cwd=tmp_path, env=cli_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300            # a safety net only: we wait for the metrics rows to appear
    while time.time() < deadline and proc.poll() is None:
        found = list(root.glob("*/metrics.csv"))
        if found and len(found[0].read_text().splitlines()) > 2 * 3:      # 3 epochs of 2 members
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "grokmuon: a new run folder under outputs/parity-muon-softmax/ (no unfinished run" in err
    (folder,) = root.iterdir()
    stopped = json.loads((folder / "summary.json").read_text())
    assert stopped["status"] == "interrupted" and (folder / "checkpoint.pt").exists()
    at = stopped["members"][0]["epochs_run"]
    assert 3 <= at < 150

    again = subprocess.run([grokmuon_exe(), *ARGS], cwd=tmp_path, env=cli_env(), text=True,
                           capture_output=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    rel = folder.relative_to(tmp_path)
    assert f"grokmuon: continuing the interrupted run of this config in {rel} (status 'interrupted' after " \
           f"epoch {at})" in again.stderr
    assert f"resuming from its checkpoint after epoch {at}" in again.stderr
    assert f"run folder: {folder}" in again.stdout               # the same folder, not a new timestamp
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["resumed_from"]["epoch"] == at
    assert epochs(folder) == {0: list(range(1, 151)), 1: list(range(1, 151))}      # nothing lost or repeated
    runs = [p for p in root.iterdir() if not is_set_aside(p)]
    assert runs == [folder] and len(list(root.iterdir())) == 2   # plus the first attempt's files, set aside


def test_the_newest_unfinished_run_of_the_same_config_with_a_checkpoint_is_found(tmp_path):
    cfg = config("parity")
    h = config_hash(cfg)

    def run(name, status="interrupted", c=cfg, ckpt=True, mtime=0):
        folder = write_run(tmp_path / name, c, [None, None], status=status)
        if ckpt:
            (folder / "checkpoint.pt").write_bytes(b"x")
        os.utime(folder / "summary.json", (1e9 + mtime, 1e9 + mtime))
        return folder

    assert interrupted_run(tmp_path / "none", h) == (None, "no unfinished run of this config there")
    run("a-complete", status="complete", mtime=9)
    assert interrupted_run(tmp_path, h)[0] is None
    run("b-other", c=config("parity", seeds=(0,)), mtime=8)
    assert interrupted_run(tmp_path, h) == (None, "1 unfinished run there is of another config")
    run("c-no-checkpoint", ckpt=False, mtime=7)
    assert "c-no-checkpoint stopped without a checkpoint" in interrupted_run(tmp_path, h)[1]
    older = run("d-older", mtime=1)
    newer = run("e-newer", status="failed", mtime=2)
    assert interrupted_run(tmp_path, h) == (newer, "status 'failed' after epoch 300")
    run("e-newer.incomplete-20260101-000000", mtime=5)           # an earlier attempt's files, set aside
    assert interrupted_run(tmp_path, h)[0] == newer
    summary = json.loads((newer / "summary.json").read_text())   # a live process trains it: not ours
    (newer / "summary.json").write_text(json.dumps({**summary, "status": "running",
                                                    "host": socket.gethostname(), "pid": os.getppid()}))
    os.utime(newer / "summary.json", (1e9 + 2, 1e9 + 2))
    assert interrupted_run(tmp_path, h)[0] == older
