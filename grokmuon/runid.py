"""What identifies a run and a member: their hashes, and the sweep folder name made of them.

A run (one Hydra job: an ensemble of members, one per seed) is identified by `config_hash`: a hash of
its resolved config without the keys in NOT_RESULTS, which change where or how a run is watched but
not what it computes, and without keys added since schema version 1 while they hold their defaults
(HASHED_V1), so a new key renames no committed run. A member is identified by `member_hash`: the hash of the same config with
`seeds=[its seed]`, since member i of an ensemble equals a solo run with its seed (design rule).

Sweeps write each run to multirun/<experiment>/<task>-<optimizer>-<head>-<config_hash> (`cell_name`, the
${run_id:} of conf/train.yaml), so re-running a sweep finds each cell's folder again;
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
#   role, race_round   labels `grokmuon tune` gives its runs (tune | confirm; which race of its rounds)
#   checkpoint_every, checkpoint_minutes, keep_weights, probes, probe_every   what is saved or measured
#               besides the results; a resumed run equals an uninterrupted one, and probes only read the
#               weights and logits
#   eval_train, eval_train_every   how often the train split is measured; the grokking and memorisation
#               epochs do not depend on it (tested)
NOT_RESULTS = ("logger", "progress", "eval_chunk", "train_chunk", "experiment", "device", "role", "race_round",
               "checkpoint_every", "checkpoint_minutes", "keep_weights", "probes", "probe_every", "eval_train",
               "eval_train_every")
# The schema's leaves as they stood when the first runs were committed (schema version 1). A key that
# is not among them (or under one of them) was added later: it is left out of the hash while it holds
# the schema's default (what every older run did), so adding a key with a default, at any depth, renames
# no committed run and a re-run of its sweep still skips it (tested). A node added as a whole (grid) is
# left out only while all of it is at its default, as it was hashed when it was added. This list never
# changes: a new key needs no entry, only a default equal to what the older runs did.
HASHED_V1 = frozenset((
    "task.name", "task.p", "task.train_frac", "task.n_bits",
    "model.n_layers", "model.d_model", "model.n_heads", "model.d_mlp", "model.dropout", "model.rope_base",
    "head.name",
    "optimizer.name", "optimizer.lr", "optimizer.weight_decay", "optimizer.betas", "optimizer.eps",
    "optimizer.warmup_steps", "optimizer.momentum", "optimizer.nesterov", "optimizer.ns_steps",
    "optimizer.ns_coefficients", "optimizer.adjust_lr", "optimizer.ns_dtype", "optimizer.adamw_lr",
    "optimizer.adamw_weight_decay",
    "seeds", "batch_size", "max_epochs", "patience", "grok_val_acc", "grok_train_acc", "precision",
))


def schema_defaults(schema=None) -> dict:
    """The schema's default config as plain nested values (a MISSING value stays '???': it equals no
    real value, so such a key is always hashed)."""
    from dataclasses import asdict

    from .config import Config
    return asdict((schema or Config)())


def _v1_prefix(path: str) -> bool:
    """Whether `path` is a leaf of schema version 1 or a node above some."""
    return path in HASHED_V1 or any(k.startswith(path + ".") for k in HASHED_V1)


def identity(cfg: dict, defaults: dict | None = None, prefix: str = "") -> dict:
    """What a run's hash covers: cfg minus NOT_RESULTS and Hydra's node, minus every key added since
    schema version 1 that holds its default (defaults: schema_defaults()). Keys the schema does not know
    (a raced member's `member`) are kept."""
    defaults = schema_defaults() if defaults is None else defaults
    kept = {}
    for k, v in cfg.items():
        path = prefix + k
        if not prefix and (k in NOT_RESULTS or k == "hydra"):
            continue
        if _v1_prefix(path):
            if isinstance(v, dict) and path not in HASHED_V1:
                v = identity(v, defaults.get(k) or {}, path + ".")
            kept[k] = v
        elif not (isinstance(defaults, dict) and k in defaults and _same(v, defaults[k])):
            kept[k] = v
    return kept


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def with_defaults(cfg: dict, defaults: dict | None = None, prefix: str = "") -> dict:
    """cfg (a config.json, perhaps written before some keys existed) with each key added since schema
    version 1 that it lacks at its schema default: what the run did, since a key is only ever added with
    the value older runs had. Version 1's keys are left as they are (every run folder has them)."""
    defaults = schema_defaults() if defaults is None else defaults
    out = dict(cfg)
    for k, d in defaults.items():
        path = prefix + k
        if k not in out and not _v1_prefix(path):
            out[k] = d
        elif isinstance(d, dict) and isinstance(out.get(k), dict) and _v1_prefix(path):
            out[k] = with_defaults(out[k], d, path + ".")
    return out


def config_hash(cfg: dict | DictConfig, defaults: dict | None = None) -> str:
    """8 hex digits of sha256 over identity(cfg): the resolved config minus NOT_RESULTS, Hydra's node
    and keys added since schema version 1 at their defaults."""
    if isinstance(cfg, DictConfig):
        cfg = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
               for k in cfg if k != "hydra"}    # key by key: the hydra node may refer to this very hash
    text = json.dumps(identity(cfg, defaults), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def member_hash(cfg: dict, seed: int, lr: float | None = None, weight_decay: float | None = None) -> str:
    """The hash of the solo run this member equals: its seed, lr and weight decay, no grid. A raced
    member's outcome depends on the whole grid (the race stops it), so its hash is the run's and its own."""
    if cfg.get("stop") == "race":
        return config_hash({**cfg, "member": [int(seed), lr, weight_decay]})
    solo = {**cfg, "seeds": [int(seed)], "grid": schema_defaults()["grid"]}
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
