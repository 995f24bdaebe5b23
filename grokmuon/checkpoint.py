"""Checkpoints: an ensemble's whole training state, to resume an interrupted run exactly where it stopped,
and its members' final weights, to analyse trained models without the trainer.

  checkpoint.pt  everything train() needs to go on: weights, optimizer state, the member generators'
                 states, the step and epoch, each member's results so far. Written at an interruption,
                 every `checkpoint_every` epochs and every `checkpoint_minutes` minutes; deleted once the
                 run is complete (it holds the optimizer state, 3x the weights).
  weights.pt     the members' final weights and what they are (model shape, task, each member's seed,
                 lr and weight decay): written at the end when keep_weights (the default).
Both are written atomically (temp file + rename). A checkpoint is read back only for the same config
hash and format; anything else (another config, a truncated or foreign file) is refused with one line
and the run starts over. On the CPU, a resumed run equals an uninterrupted one (tested).

Rebuild one member as a plain model and evaluate it (no trainer, no Hydra):
    from grokmuon.checkpoint import load_member
    model, info = load_member("multirun/.../weights.pt", member=0)    # an E=1 EnsembleTransformer
    from grokmuon.tasks import make_task
    x, y = make_task(info["task"]["name"], info["task"]["p"], info["task"]["n_bits"])
    acc = (model.eval()(x)[0].argmax(-1) == y).float().mean()          # all rows; info has the seed's split
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch

CHECKPOINT, WEIGHTS = "checkpoint.pt", "weights.pt"
FORMAT = 1                      # bump when the saved layout changes: older files are then refused


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line naming the file and why."""


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def load(path: Path, config_hash: str) -> dict:
    """The state in path, if it is a checkpoint of this config; CheckpointError otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (truncated, not a torch file, unpicklable: all one line)
        raise CheckpointError(f"{path}: unreadable ({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''})")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a grokmuon checkpoint of format {FORMAT}")
    if state.get("config_hash") != config_hash:
        raise CheckpointError(f"{path}: written for config {state.get('config_hash')}, not this run's {config_hash}")
    return state


class Saver:
    """Where and when train() saves: checkpoint.pt every `every` epochs (0: never on a schedule), at the end
    of an epoch once `minutes` have passed since the last save (0: never on the clock), and at an
    interruption; at the end, weights.pt (if keep_weights) and no checkpoint.pt."""

    def __init__(self, folder: Path, config_hash: str, every: int = 0, keep_weights: bool = True, info=None,
                 minutes: float = 0.0, clock=time.monotonic):
        self.folder, self.hash, self.every, self.keep_weights = Path(folder), config_hash, every, keep_weights
        self.info, self.minutes, self.clock = info or {}, minutes, clock
        self.last = clock()

    def due(self, epoch: int) -> bool:
        return (self.every > 0 and epoch % self.every == 0) or \
            (self.minutes > 0 and self.clock() - self.last >= 60 * self.minutes)

    def save(self, state: dict) -> None:
        atomic_save({"format": FORMAT, "config_hash": self.hash, **state}, self.folder / CHECKPOINT)
        self.last = self.clock()

    def end(self, model) -> None:
        if self.keep_weights:
            atomic_save({"format": FORMAT, "config_hash": self.hash, "model": model.state_dict(),
                         "shape": asdict(model.shape), **self.info}, self.folder / WEIGHTS)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / CHECKPOINT).unlink()


def load_member(path: str | Path, member: int = 0):
    """(an E=1 EnsembleTransformer holding member `member`'s final weights, the file's info) from weights.pt."""
    from .model import EnsembleTransformer, ModelShape
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or "shape" not in saved:
        raise CheckpointError(f"{path}: not a grokmuon weights file of format {FORMAT}")
    model = EnsembleTransformer(ModelShape(**saved["shape"]), [torch.Generator().manual_seed(0)])
    model.load_state_dict({k: v[member:member + 1] for k, v in saved["model"].items()})
    info = {k: v for k, v in saved.items() if k not in ("model", "shape")}
    info["member"] = info.get("members", [None] * (member + 1))[member]
    return model, info
