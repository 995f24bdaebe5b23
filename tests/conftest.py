"""Shared fixtures: the real Hydra config, composed and shrunk for fast CPU tests."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import grokmuon.job  # noqa: F401  (registers the structured config, as `grokmuon train` does)
from grokmuon.config import CONF, register_configs

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


def grokmuon_exe() -> str:
    """The venv's `grokmuon` console script, next to the running interpreter."""
    exe = Path(sys.executable).parent / "grokmuon"
    if not exe.exists():
        pytest.skip(f"no grokmuon executable next to {sys.executable}")
    return str(exe)


def cli_env(**extra: str) -> dict[str, str]:
    """A subprocess environment with W&B kept quiet and local."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update({"WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}, **extra)
    return env
