"""What identifies a run, and what a re-run does with the folder it finds.

A run (one Hydra job: an ensemble of members, one per seed) is identified by `config_hash`: a hash of
its resolved config without the keys in NOT_RESULTS, which change where or how a run is watched but
not what it computes. A member is identified by `member_hash`: the hash of the same config with
`seeds=[its seed]`, since member i of an ensemble equals a solo run with its seed (design rule).

Sweeps write each run to multirun/<experiment>/<task>-<optimizer>-<head>-<config_hash> (grokmuon/conf/train.yaml),
so re-running a sweep finds each cell's folder again, and `decide` says what to do with it:
skip it (complete, same hash), or set its files aside and train again (anything else). Nothing is
deleted: files of an unfinished attempt move to <folder>.incomplete-<time>, those of a finished run
of another config (only possible with a hand-made folder name) to <folder>.superseded-<time>.
No torch here: `grokmuon collect` and the Hydra resolver use it too.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

SUMMARY = "summary.json"

# Keys that do not change results, so two runs differing only in them are the same run:
#   logger      the W&B mirror only copies what the run folder already holds
#   progress    the tqdm bar
#   eval_chunk  rows per eval forward: bounds memory; the numbers are the same (up to float rounding)
#   experiment  the sweep's name: the same cell in two sweeps is the same run (collect keeps one)
#   device      where it ran, recorded in summary.json: a sweep resumed on another machine keeps its
#               finished cells. CPU and GPU runs of one seed differ in float rounding and dropout
#               masks (device generators), i.e. they are equally valid draws, not a different setup.
#   role        a label `grokmuon tune` gives its runs (tune | confirm)
#   checkpoint_every, keep_weights, probes   what is saved or measured besides the results; a resumed
#               run equals an uninterrupted one, and probes only read the weights and logits
#   eval_train, eval_train_every   how often the train split is measured; the grokking and memorisation
#               epochs do not depend on it (tested)
NOT_RESULTS = ("logger", "progress", "eval_chunk", "experiment", "device", "role", "checkpoint_every",
               "keep_weights", "probes", "eval_train", "eval_train_every")
# Keys added after runs were committed, left out while at these values (what every older run did), so
# the committed runs keep their hashes and a re-run of their sweeps still skips them (tested).
ADDED = {"grid": {"lr": None, "weight_decay": None}, "stop": "patience"}


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


def read_summary(folder: Path) -> dict | None:
    """The folder's summary.json, or None if it is missing or not a JSON object (half-written, edited)."""
    try:
        summary = json.loads((Path(folder) / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def decide(folder: Path, chash: str, own: set[str] = frozenset()) -> tuple[str, str, str]:
    """(action, kind, why) for a run of hash chash about to write into folder. action: "fresh" (nothing
    there yet), "skip" (a complete run of this hash), "busy" (a live process on this machine is training
    it: the same sweep started twice), or "set_aside" with kind "incomplete" or "superseded".

    own: entries the current attempt already wrote (Hydra's .hydra/ and job log), not counted as old.
    """
    folder = Path(folder)
    old = [p for p in folder.iterdir() if p.name not in own] if folder.is_dir() else []
    if not old:
        return "fresh", "", "empty folder"
    summary = read_summary(folder)
    if summary is None:
        why = "no summary.json" if not (folder / SUMMARY).exists() else "unreadable summary.json"
        return "set_aside", "incomplete", why
    status, old_hash = summary.get("status"), summary.get("config_hash")
    if status == "complete" and old_hash == chash:
        return "skip", "", "complete"
    if status == "complete":
        return "set_aside", "superseded", f"complete run of another config ({old_hash})"
    if status == "running" and alive(summary.get("host"), summary.get("pid")):
        return "busy", "", f"process {summary['pid']} on this machine is training it"
    return "set_aside", "incomplete", f"status {status!r}"


def alive(host: str | None, pid: int | None) -> bool:
    """Whether process pid runs on this machine (another machine's processes cannot be checked)."""
    if host != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def set_aside(folder: Path, kind: str, own: set[str] = frozenset()) -> Path:
    """Move the folder's old entries (all but `own`) to <folder>.<kind>-<time>; return that folder."""
    folder = Path(folder)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder.with_name(f"{folder.name}.{kind}-{stamp}")
    n = 1
    while aside.exists():                      # two re-runs in one second: never merge into an old one
        aside, n = folder.with_name(f"{folder.name}.{kind}-{stamp}-{n}"), n + 1
    aside.mkdir(parents=True)
    for entry in folder.iterdir():
        if entry.name not in own:
            entry.rename(aside / entry.name)
    return aside
