"""Shared fixtures: the real Hydra config, composed and shrunk for fast CPU tests."""
from __future__ import annotations

import atexit
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import grokmuon.job  # noqa: F401  (registers the structured config, as `grokmuon train` does)
from grokmuon.config import CONF, register_configs

pytest_plugins = ("skipcheck",)      # a skip outside the gpu marker fails the run (tests/skipcheck.py)

# One intra-op thread: the tensors here are tiny, and on a small shared machine two spinning OpenMP
# threads per test process made training steps ~10x slower than one thread (measured on 2 cores).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
# Every test config starts small: one tiny layer, no W&B, no progress bar, on the CPU.
SHRINK = ("model=tiny", "logger=none", "progress=false", "device=cpu")


def compose_config(*overrides: str, shrink: bool = True) -> DictConfig:
    """The config `grokmuon train <overrides>` would run, composed from conf/ (overrides win over SHRINK)."""
    register_configs()
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    base = [o for o in SHRINK if o.split("=", 1)[0] not in keys] if shrink else []
    with initialize_config_dir(str(CONF), version_base=None):
        return compose("train", overrides=[*base, *overrides])


@pytest.fixture
def compose_cfg():
    return compose_config


@pytest.fixture(autouse=True)
def _seeded():
    """Tests that draw random inputs get the same ones every run."""
    torch.manual_seed(0)


def grokmuon_exe(bindir: Path = Path(sys.executable).parent) -> str:
    """The venv's `grokmuon` console script, next to the running interpreter; where there is none (the
    package imported from a checkout without its scripts installed), a stand-in that runs
    `sys.executable -m grokmuon`, so the command-line tests run either way instead of being skipped."""
    exe = bindir / "grokmuon"
    if exe.exists():
        return str(exe)
    shim = Path(tempfile.gettempdir()) / f"grokmuon-tests-{os.getpid()}" / "grokmuon"
    if not shim.exists():
        shim.parent.mkdir(exist_ok=True)
        atexit.register(shutil.rmtree, shim.parent, True)
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m grokmuon "$@"\n')
        shim.chmod(0o755)
    return str(shim)


def study_copy(root: Path, grokmuon: str | None = None, python: bool = False) -> Path:
    """scripts/study.sh copied into root/scripts/, so a test runs it away from the repository; grokmuon: a
    stand-in .venv/bin/grokmuon (its shell body, after #!/bin/sh); python: .venv/bin/python is this venv's
    (the lanes' inline Python). No .venv at all unless asked: the script would then install one."""
    (root / "scripts").mkdir()
    script = root / "scripts" / "study.sh"
    script.write_text((REPO / "scripts" / "study.sh").read_text())
    stand_ins = {"grokmuon": grokmuon, "python": f'exec "{sys.executable}" "$@"' if python else None}
    for name, body in stand_ins.items():
        if body is not None:
            (root / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
            (root / ".venv" / "bin" / name).write_text(f"#!/bin/sh\n{body}\n")
            (root / ".venv" / "bin" / name).chmod(0o755)
    return script


def cli_env(**extra: str) -> dict[str, str]:
    """A subprocess environment with W&B kept quiet and local."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update({"WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}, **extra)
    return env


def step_of(cfg):
    """The TrainStep train() builds for cfg, and its first batch, without training: a hook on TrainStep
    stops train() at its first step (tests/test_step.py, test_grokfast.py)."""
    import grokmuon.train as tr
    built = {}
    real = tr.TrainStep

    class Catch(real):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            built["step"] = self

        def __call__(self, batch):
            built.setdefault("batch", batch)
            raise StopIteration
    tr.TrainStep = Catch
    try:
        with pytest.raises(StopIteration):
            tr.train(cfg)
    finally:
        tr.TrainStep = real
    return built["step"], built["batch"]
