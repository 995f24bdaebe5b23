"""The repository's front door: `make clean` never touches a tracked file, and what README.md and docs/
quote (commands, repo paths) is real."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What a build or a scratch run leaves behind, all ignored by git: `make clean` must remove each one.
SCRATCH = (".venv/bin/python", "build/lib/x.py", "dist/grokmuon.whl", "grokmuon.egg-info/PKG-INFO",
           "outputs/modadd-muon-softmax/t/metrics.csv", "wandb/run/x", ".pytest_cache/v/x",
           "multirun/smoke/modadd-muon-softmax-0/summary.json", "results/smoke/runs.csv",
           "grokmuon/__pycache__/x.pyc", "tests/__pycache__/x.pyc")


@pytest.mark.skipif(not (REPO / ".git").exists() or not shutil.which("git") or not shutil.which("make"),
                    reason="needs a git checkout, git and make")
def test_make_clean_removes_scratch_and_never_a_tracked_file(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=300)
    for name in ("Makefile", ".gitignore"):          # this checkout's versions, committed or not
        shutil.copy(REPO / name, clone / name)
    for rel in SCRATCH:
        (clone / rel).parent.mkdir(parents=True, exist_ok=True)
        (clone / rel).write_text("scratch\n")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert {ln[3:] for ln in status.stdout.splitlines()} <= {"Makefile", ".gitignore"}, status.stdout  # all ignored
    tracked = subprocess.run(["git", "ls-files"], cwd=clone, capture_output=True, text=True, check=True).stdout
    assert "multirun/" in tracked and "results/" in tracked       # there are committed results to lose

    done = subprocess.run(["make", "clean"], cwd=clone, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    changed = {ln[3:]: ln[:2] for ln in status.stdout.splitlines()}
    assert not [p for p, code in changed.items() if "D" in code], status.stdout      # no tracked file deleted
    assert set(changed) <= {"Makefile", ".gitignore"}, status.stdout
    assert all((clone / p).is_file() for p in tracked.splitlines())
    assert [rel for rel in SCRATCH if (clone / rel).exists()] == []
