"""Hydra's own records of a launch (a run folder's .hydra/config.yaml, hydra.yaml and overrides.yaml; a
sweep folder's multirun.yaml) are written only where they describe new work. Hydra writes them at every
launch, before a job can decide to skip its complete cell, so re-running a sweep (a study lane, a
reproduce script) would rewrite the records of committed runs. conf/train.yaml turns Hydra's per-run
writing off (hydra.output_subdir: null) and registers KeepSweepRecord; job.py calls save_run_records
once it knows it will train.
"""
from __future__ import annotations

import atexit
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

SUBDIR = ".hydra"       # where Hydra itself put them, so older run folders and new ones look alike


def save_run_records(folder: Path, cfg: DictConfig) -> None:
    """The three files Hydra writes into a run's .hydra/, with the same content: the job's config, the
    Hydra config of this launch, and the launch's overrides."""
    hydra_cfg = HydraConfig.instance().cfg
    out = Path(folder) / SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    for name, node in (("config.yaml", cfg), ("hydra.yaml", hydra_cfg),
                       ("overrides.yaml", hydra_cfg.hydra.overrides.task)):
        (out / name).write_text(OmegaConf.to_yaml(node), encoding="utf-8")


class KeepSweepRecord(Callback):
    """A sweep folder's multirun.yaml stays as its first launch wrote it. Hydra's sweeper rewrites it at
    every launch; the old bytes are put back when the sweep ends, or at exit if it was stopped (a run
    killed outright leaves the new one). Each run folder's .hydra/ says what that run was launched with."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        path = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
        self._old = (path, path.read_bytes()) if path.is_file() else None
        if self._old:
            atexit.register(self._restore)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if getattr(self, "_old", None):
            self._restore()
            atexit.unregister(self._restore)

    def _restore(self) -> None:
        path, old = self._old
        try:
            if not path.is_file() or path.read_bytes() != old:
                path.write_bytes(old)
        except OSError:         # the folder went away: nothing to keep
            pass
