"""The run folder: resolved config, metrics.csv (a row per epoch per member), summary.json; W&B mirror.

Every file that later code trusts is written atomically (temp file + rename), so a kill mid-write
leaves the previous complete version, never half a file. metrics.csv is appended and flushed each epoch.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import socket
import subprocess
import time
from pathlib import Path

import torch

from . import racing
from .config import members
from .probes import PROBES
from .resume import SUMMARY, config_hash, member_hash

NUMBERS = ("train_acc", "val_acc", "train_loss", "val_loss")
METRIC_FIELDS = ["epoch", "member", "seed", "lr", "weight_decay", *NUMBERS, "wall_s", *PROBES]
METRICS = "metrics.csv"


def atomic_write_text(path: Path, text: str) -> None:
    """Write path whole or not at all: a failed or killed write leaves the previous version, and a
    failed one leaves no temp file behind (a killed one may leave a dot-file that nothing reads)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def finite_or_none(x):
    """JSON has no NaN or infinity (a diverged member's last loss): write null, so strict readers
    (jq, browsers) can read summary.json."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite_or_none(v) for v in x]
    return x


def check_writable(folder: Path) -> None:
    """Fail now, with one line, if the run folder cannot be written (not after an hour of training)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / ".write-check", "ok\n")
        (folder / ".write-check").unlink()
    except OSError as err:
        raise OSError(f"cannot write the run folder {folder}: {err.strerror or err}") from None


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


class RunLog:
    """Writes one run folder for an ensemble; mirrors each member to its own W&B run when asked."""

    def __init__(self, folder: Path, cfg: dict, device: str, carried: list[dict] | None = None,
                 resumed_from: dict | None = None):
        """carried: metrics.csv rows of the attempt this one resumes (up to its checkpoint's epoch),
        written first; resumed_from: where it resumed, recorded in summary.json."""
        self.folder = Path(folder)
        check_writable(self.folder)
        self.cfg, self.members = cfg, members(cfg)       # (seed, lr, weight_decay) per member
        self.hash = config_hash(cfg)      # what a re-run compares to decide whether to skip this folder
        self.start = time.time()
        self.env = {"git_sha": git_sha(), "torch": torch.__version__, "device": device_name(device),
                    "host": socket.gethostname(), "pid": os.getpid()}  # pid: a re-run leaves a live run alone
        atomic_write_text(self.folder / "config.json", json.dumps(cfg, indent=2) + "\n")
        self._metrics = open(self.folder / METRICS, "w", newline="")
        self._csv = csv.DictWriter(self._metrics, fieldnames=METRIC_FIELDS)
        self._csv.writeheader()
        carried = carried or []
        for row in carried:
            self._csv.writerow({k: row.get(k) for k in METRIC_FIELDS})
        self.resumed_from = resumed_from
        if carried:                     # wall time goes on from where the earlier attempt stopped
            self.start -= float(carried[-1].get("wall_s") or 0)
        self._wandb = self._start_wandb(cfg) if cfg["logger"]["name"] == "wandb" else []
        self.write_summary(None, status="running")

    def _start_wandb(self, cfg: dict) -> list:
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb  # imported only when used: `logger=none` never loads it
        lg = cfg["logger"]
        group = f"{self.folder.parent.name}/{self.folder.name}"
        grid = len({(lr, wd) for _, lr, wd in self.members}) > 1
        return [wandb.init(project=lg["project"], entity=lg["entity"], mode=lg["mode"], group=group,
                           name=f"{cfg['task']['name']}-{cfg['optimizer']['name']}-{cfg['head']['name']}-s{seed}"
                                + (f"-lr{lr:g}-wd{wd:g}" if grid else ""),
                           dir=str(self.folder), config={**cfg, "seed": seed, "lr": lr, "weight_decay": wd},
                           job_type=cfg.get("role") or "train",
                           tags=[cfg["task"]["name"], cfg["optimizer"]["name"], cfg["head"]["name"],
                                 str(cfg.get("experiment", "default"))],
                           reinit="create_new")
                for seed, lr, wd in self.members]

    def log_epoch(self, epoch: int, numbers: dict, results) -> None:
        wall = round(time.time() - self.start, 3)
        for e, r in enumerate(results):
            if r.epochs_run != epoch:        # stopped members (diverged) write no more rows
                continue
            _, lr, wd = self.members[e]
            row = {"epoch": epoch, "member": e, "seed": r.seed, "lr": lr, "weight_decay": wd, "wall_s": wall}
            # An unmeasured number (the train split under eval_train=lazy) is NaN: written blank, not logged.
            row.update({k: numbers[k][e] for k in (*NUMBERS, *PROBES) if k in numbers and not math.isnan(numbers[k][e])})
            self._csv.writerow(row)
            if self._wandb:
                self._wandb[e].log({k: row[k] for k in (*NUMBERS, "wall_s", *PROBES) if k in row}, step=epoch)
        self._metrics.flush()

    def member_summaries(self, results, status: str | None) -> list[dict]:
        cfg, out = self.cfg, []
        for e, r in enumerate(results or [None] * len(self.members)):
            seed, lr, wd = self.members[e]
            out.append({
                "member": e, "seed": seed, "lr": lr, "weight_decay": wd,
                "member_hash": member_hash(cfg, seed, lr, wd), "task": cfg["task"]["name"],
                "optimizer": cfg["optimizer"]["name"], "head": cfg["head"]["name"],
                "grokking_epoch": r.grokking_epoch if r else None,
                "memorisation_epoch": r.memorisation_epoch if r else None,
                "censored": bool(r and r.status == "censored"),
                "status": status or r.status, "diverged_epoch": r.diverged_epoch if r else None,
                "epochs_run": r.epochs_run if r else 0, "max_epochs": cfg["max_epochs"],
                **({f"final_{k}": v for k, v in r.final.items()} if r else {}),
            })
        return out

    def write_summary(self, results, status: str | None = None, reason: str | None = None) -> dict:
        members = self.member_summaries(results, status)
        summary = {"status": status or _overall(results), "config_hash": self.hash,
                   "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),  # collect keeps the newest duplicate
                   "wall_s": round(time.time() - self.start, 3), **self.env,
                   **({"resumed_from": self.resumed_from} if self.resumed_from else {}),
                   **({"reason": reason} if reason else {}),
                   "counts": {s: sum(m["status"] == s for m in members) for s in _member_statuses(members)},
                   **({"race": race_summary(members)} if self.cfg.get("stop") == "race" and results else {}),
                   "members": members}
        summary = finite_or_none(summary)
        atomic_write_text(self.folder / SUMMARY, json.dumps(summary, indent=2, allow_nan=False) + "\n")
        return summary

    def finish(self, results, reason: str | None = None) -> dict:
        self._metrics.close()                  # every row on disk before summary.json vouches for them
        summary = self.write_summary(results, reason=reason)
        self._finish_wandb(summary["members"], 0 if summary["status"] == "complete" else 1)
        return summary

    def _finish_wandb(self, members: list[dict], exit_code: int) -> None:
        """Close each member's W&B run with its outcome; a non-zero exit code marks it failed in W&B (an
        interrupted run must not show as finished)."""
        for run, m in zip(self._wandb, members):
            for k in ("grokking_epoch", "memorisation_epoch", "censored", "status", "epochs_run"):
                run.summary[k] = m[k]
            run.finish(exit_code=exit_code)
        self._wandb = []


    def abort(self, results, status: str, reason: str | None = None) -> bool:
        """End a run that did not finish (status "interrupted" or "failed"): members still running
        take that status, summary.json says so (with the reason); metrics.csv keeps the rows it has.
        False if summary.json could not be written either (it then still says "running")."""
        for r in results or []:
            if r.status == "running":
                r.status = status
        with contextlib.suppress(OSError, ValueError):
            self._metrics.close()
        try:
            self.write_summary(results, status=None if results else status, reason=reason)
        except OSError:
            return False
        finally:
            if self._wandb:
                with contextlib.suppress(Exception):   # the W&B mirror must not hide the real error
                    self._finish_wandb(self.member_summaries(results, None if results else status), 1)
        return True


def race_summary(members: list[dict]) -> dict:
    """A raced grid's outcome: where it stopped and the configuration racing.choose picks."""
    configs = racing.by_config((m["lr"], m["weight_decay"], m["status"], m["grokking_epoch"]) for m in members)
    lr, wd = racing.choose(configs)
    raced = [m["epochs_run"] for m in members if m["status"] == "raced_out"]
    return {"stopped_at": max(raced) if raced else None, "chosen": {"lr": lr, "weight_decay": wd},
            "chosen_median": racing.median_epoch(configs[(lr, wd)]), "rule": racing.RULE}


def _member_statuses(members: list[dict]) -> list[str]:
    order = ["grokked", "censored", "raced_out", "diverged", "interrupted", "failed", "running"]
    return [s for s in order if any(m["status"] == s for m in members)] + \
        sorted({m["status"] for m in members} - set(order))


def _overall(results) -> str:
    """The run's status: failed or interrupted if any member was, else complete (each member has its
    own: grokked, censored or diverged)."""
    for status in ("failed", "interrupted"):
        if any(r.status == status for r in results):
            return status
    return "complete"
