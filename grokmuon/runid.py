"""What identifies a run and a member: their hashes, and the sweep folder name made of them.

A run (one Hydra job: an ensemble of members, one per seed) is identified by `config_hash`: a hash of
its resolved config without the keys in NOT_RESULTS, which change where or how a run is watched but
not what it computes. A member is identified by `member_hash`: the hash of the same config with
`seeds=[its seed]`, since member i of an ensemble equals a solo run with its seed (design rule).

Sweeps write each run to multirun/<experiment>/<task>-<optimizer>-<head>-<config_hash> (`cell_name`, the
${run_id:} of grokmuon/conf/train.yaml), so re-running a sweep finds each cell's folder again;
runfolder.decide then says what to do with it. No torch here: `grokmuon collect` and the Hydra
resolver use it too.
"""
from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

# Keys that do not change results, so two runs differing only in them are the same run:
#   logger      the W&B mirror only copies what the run folder already holds
#   progress    the tqdm bar
#   eval_chunk  rows per eval forward: bounds memory; the numbers are the same (up to float rounding)
#   train_chunk members per training forward/backward: a member's numbers are its own either way
#   experiment  the sweep's name: the same cell in two sweeps is the same run (collect keeps one)
#   device      where it ran, recorded in summary.json: a sweep resumed on another machine keeps its
#               finished cells. CPU and GPU runs of one seed differ in float rounding and dropout
#               masks (device generators), i.e. they are equally valid draws, not a different setup.
#   role        a label `grokmuon tune` gives its runs (tune | confirm)
#   checkpoint_every, keep_weights, probes   what is saved or measured besides the results; a resumed
#               run equals an uninterrupted one, and probes only read the weights and logits
#   eval_train, eval_train_every   how often the train split is measured; the grokking and memorisation
#               epochs do not depend on it (tested)
NOT_RESULTS = ("logger", "progress", "eval_chunk", "train_chunk", "experiment", "device", "role", "checkpoint_every",
               "keep_weights", "probes", "eval_train", "eval_train_every")
# Keys added after runs were committed, left out while at these values (what every older run did), so
# the committed runs keep their hashes and a re-run of their sweeps still skips them (tested).
# dropout_masks=auto is what every committed (CPU) run did: per-member generators.
# compile=off is what every committed run did (eager); a compiled run is not bit-equal, so it keeps its own hash.
ADDED = {"grid": {"lr": None, "weight_decay": None}, "stop": "patience", "dropout_masks": "auto", "compile": "off"}


def config_hash(cfg: dict | DictConfig) -> str:
    """8 hex digits of sha256 over the resolved config minus NOT_RESULTS (and Hydra's own node)."""
    if isinstance(cfg, DictConfig):
        cfg = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
               for k in cfg if k != "hydra"}    # key by key: the hydra node may refer to this very hash
    kept = {k: v for k, v in cfg.items()
            if k not in NOT_RESULTS and k != "hydra" and not (k in ADDED and v == ADDED[k])}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def member_hash(cfg: dict, seed: int, lr: float | None = None, weight_decay: float | None = None) -> str:
    """The hash of the solo run this member equals: its seed, lr and weight decay, no grid. A raced
    member's outcome depends on the whole grid (the race stops it), so its hash is the run's and its own."""
    if cfg.get("stop") == "race":
        return config_hash({**cfg, "member": [int(seed), lr, weight_decay]})
    solo = {**cfg, "seeds": [int(seed)], "grid": ADDED["grid"]}
    if lr is not None:
        solo["optimizer"] = {**cfg["optimizer"], "lr": lr, "weight_decay": weight_decay}
    return config_hash(solo)


def cell_name(cfg: dict | DictConfig) -> str:
    """Readable and unique folder name of a run: <task>-<optimizer>-<head>-<config_hash>."""
    return f"{cfg['task']['name']}-{cfg['optimizer']['name']}-{cfg['head']['name']}-{config_hash(cfg)}"


def register_resolver() -> None:
    """${run_id:} in Hydra config resolves to cell_name of the job's own config (hydra.sweep.subdir)."""
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", lambda *, _root_: cell_name(_root_))
