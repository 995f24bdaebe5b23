"""The run folder: the one owner of its format. It writes the folder (atomically), reads it back, and
decides what a re-run does with a folder it finds.

  config.json    the resolved config (what config_hash and member_hash are taken over, runid.py)
  metrics.csv    a row per epoch per member: metric_fields(); appended and flushed each epoch
  summary.json   the run's status, environment and each member's outcome; "running" until the end
  checkpoint.pt, weights.pt   the training state and the final weights (checkpoint.py)
Every file that later code trusts is written atomically (temp file + rename), so a kill mid-write
leaves the previous complete version, never half a file. Each member is mirrored to W&B when asked.

A re-run of a sweep finds each cell's folder again (its name holds the config hash), a re-run of a single
run the newest unfinished folder of its hash under its output root (`interrupted_run`), and `decide` says
what to do with it: skip it (complete, same hash), or set its files aside and train again (anything
else), resuming from its checkpoint where there is one (`resumable`). Nothing is deleted: files of an
unfinished attempt move to <folder>.incomplete-<time>, those of a finished run of another config (only
possible with a hand-made folder name) to <folder>.superseded-<time>.
Reading needs no torch (`grokmuon collect`); writing imports it when a folder is opened.
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
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from . import racing
from .config import members
from .runid import config_hash, member_hash

if TYPE_CHECKING:
    import pandas as pd

CONFIG, METRICS, SUMMARY = "config.json", "metrics.csv", "summary.json"
IDS = ("epoch", "member", "seed", "lr", "weight_decay")      # which row of metrics.csv: the rest are measured
NUMBERS = ("train_acc", "val_acc", "train_loss", "val_loss")
# The metrics.csv cells every reader needs (the rest are for figures and a look): a blank one means
# the file was cut off mid-write.
NEEDED_METRICS = ["epoch", "member", "seed", "train_acc", "val_acc"]


def metric_fields() -> list[str]:
    """metrics.csv's columns in order: the probe columns are probes.py's (imported here, not at the top:
    probes needs torch, and reading a run folder must not)."""
    from .fourier import PROBES as FOURIER
    from .probes import PROBES, UPDATE_PROBES
    return [*IDS, *NUMBERS, "wall_s", *PROBES, *FOURIER, *UPDATE_PROBES]


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


def git_sha() -> str:
    """The commit of the code that runs: git's HEAD where this package is a checkout's own grokmuon/ (run
    from the repo, or an editable install); else the commit pip recorded when it installed from a git URL
    (direct_url.json); else "installed package <version>" (a wheel or a copy: its commit is not known)."""
    from importlib.metadata import PackageNotFoundError, distribution
    sha = checkout_sha(Path(__file__).resolve())
    if sha:
        return sha
    try:
        dist = distribution("grokmuon")
        return installed_sha(json.loads(dist.read_text("direct_url.json") or "{}"), dist.version)
    except (PackageNotFoundError, ValueError):
        return "installed package (version unknown)"


def checkout_sha(here: Path) -> str | None:
    """HEAD of the git checkout whose grokmuon/ holds the file `here`; None when there is none, or when
    the repo around it is another one (a virtual environment inside someone's project)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=here.parent)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() / "grokmuon" / here.name != here:
        return None
    return lines[1].strip()


def installed_sha(direct_url: dict, version: str) -> str:
    """The commit an installed package came from, if pip recorded one (`pip install git+URL@ref`)."""
    commit = (direct_url.get("vcs_info") or {}).get("commit_id")
    return commit or f"installed package {version}"


def device_name(device: str) -> str:
    import torch
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    n = torch.get_num_threads()
    return f"cpu ({platform.processor() or platform.machine()}, {n} thread{'' if n == 1 else 's'})"


class RunLog:
    """Writes one run folder for an ensemble; mirrors each member to its own W&B run when asked."""

    def __init__(self, folder: Path, cfg: dict, device: str, carried: list[dict] | None = None,
                 resumed_from: dict | None = None):
        """carried: metrics.csv rows of the attempt this one resumes (up to its checkpoint's epoch),
        written first; resumed_from: where it resumed, recorded in summary.json."""
        import torch

        self.folder = Path(folder)
        check_writable(self.folder)
        self.cfg, self.members = cfg, members(cfg)       # (seed, lr, weight_decay) per member
        self.hash = config_hash(cfg)      # what a re-run compares to decide whether to skip this folder
        self.start = time.time()
        self.env = {"git_sha": git_sha(), "torch": torch.__version__, "device": device_name(device),
                    "host": socket.gethostname(), "pid": os.getpid()}  # pid: a re-run leaves a live run alone
        atomic_write_text(self.folder / CONFIG, json.dumps(cfg, indent=2) + "\n")
        self._metrics = open(self.folder / METRICS, "w", newline="")
        from .fourier import PROBES as FOURIER
        from .probes import PROBES, UPDATE_PROBES
        self.fields, self.measured = metric_fields(), (*NUMBERS, *PROBES, *FOURIER, *UPDATE_PROBES)
        self._csv = csv.DictWriter(self._metrics, fieldnames=self.fields)
        self._csv.writeheader()
        carried = carried or []
        for row in carried:
            self._csv.writerow({k: row.get(k) for k in self.fields})
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
            row.update({k: numbers[k][e] for k in self.measured if k in numbers and not math.isnan(numbers[k][e])})
            self._csv.writerow(row)
            if self._wandb:
                self._wandb[e].log({k: row[k] for k in self.fields if k in row and k not in IDS}, step=epoch)
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


def race_evidence(members: list[dict]) -> tuple[dict, dict]:
    """A grid's member summaries as racing reads them: grokking epochs and mean final validation accuracy
    by (lr, weight_decay), in grid order (racing.by_config, racing.val_by_config)."""
    return (racing.by_config((m["lr"], m["weight_decay"], m["status"], m["grokking_epoch"]) for m in members),
            racing.val_by_config((m["lr"], m["weight_decay"], m["status"], m.get("final_val_acc")) for m in members))


def race_summary(members: list[dict]) -> dict:
    """A raced grid's outcome: where it stopped and the configuration racing.choose picks."""
    configs, val = race_evidence(members)
    lr, wd = racing.choose(configs, val)
    raced = [m["epochs_run"] for m in members if m["status"] == "raced_out"]
    return {"stopped_at": max(raced) if raced else None, "chosen": {"lr": lr, "weight_decay": wd},
            "chosen_median": racing.median_epoch(configs[(lr, wd)]),
            "rule": racing.FALLBACK if racing.none_grokked(configs) else racing.RULE}


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


# ----------------------------------------------------------------------------------------- reading it back
class BadRun(ValueError):
    """A run folder whose files cannot be trusted; the message says which file and why."""


def read_summary(folder: Path) -> dict | None:
    """The folder's summary.json, or None if it is missing or not a JSON object (half-written, edited)."""
    try:
        summary = json.loads((Path(folder) / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def read_config(folder: Path) -> dict:
    """The folder's config.json; BadRun if it cannot be read."""
    try:
        return json.loads((Path(folder) / CONFIG).read_text())
    except (OSError, ValueError) as err:
        raise BadRun(f"{Path(folder) / CONFIG}: unreadable ({type(err).__name__})")


def run_folders(dirs: Iterable[str | Path]) -> list[Path]:
    """Every folder under dirs that holds a summary.json (dirs that do not exist are passed over)."""
    found = set()
    for d in map(Path, dirs):
        if d.is_dir():
            found.update(p.parent for p in d.rglob(SUMMARY))
    return sorted(found)


def lazy_blanks(cfg: dict) -> tuple[str, ...]:
    """The metrics.csv columns a run may leave blank: the train split's, under eval_train=lazy."""
    return ("train_acc",) if cfg.get("eval_train") == "lazy" else ()


def check_metrics(folder: Path, members: list[dict], complete: bool, blank_ok: tuple[str, ...] = ()) -> pd.DataFrame:
    """metrics.csv, checked: it parses, its NEEDED_METRICS cells are numbers (not blank, not garbage;
    blank_ok: columns that may be blank, the train split of an eval_train=lazy run, see lazy_blanks) and,
    for a finished run, it holds epochs 1..epochs_run of every member (a shorter file was cut off).
    BadRun, naming the file, if not. (pandas is imported here: a training process does not need it.)"""
    import pandas as pd

    path = folder / METRICS
    try:
        m = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise BadRun(f"{path}: unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__})")
    missing = [c for c in NEEDED_METRICS if c not in m.columns]
    if missing:
        raise BadRun(f"{path}: no column {', '.join(missing)}")
    blank = m[NEEDED_METRICS].isna()
    m[NEEDED_METRICS] = m[NEEDED_METRICS].apply(pd.to_numeric, errors="coerce")
    if (m[NEEDED_METRICS].isna() & ~(blank & blank.columns.isin(blank_ok))).any().any():
        raise BadRun(f"{path}: blank, partial or garbled rows (cut off mid-write?)")
    if not complete:
        return m
    for mem in members:
        epochs = m.loc[m["member"] == mem["member"], "epoch"]
        if len(epochs) != mem["epochs_run"] or (len(epochs) and epochs.max() != mem["epochs_run"]):
            raise BadRun(f"{path}: member {mem['member']} has {len(epochs)} epochs, summary.json says "
                         f"{mem['epochs_run']} (truncated?)")
    return m


# ------------------------------------------------------------------------- what a re-run does with it
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


def resumable(aside: Path, chash: str) -> tuple[dict | None, list[dict] | None, str]:
    """(state, metrics rows up to its epoch, what happens) from an interrupted attempt's folder: resume
    from its checkpoint if it is this config's and its metrics.csv holds every epoch up to it; else
    (None, None, why it starts over)."""
    from . import checkpoint
    try:
        state = checkpoint.load(aside / checkpoint.CHECKPOINT, chash)
        with open(aside / METRICS, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("epoch", "").isdigit() and int(r["epoch"]) <= state["epoch"]]
    except (checkpoint.CheckpointError, OSError) as err:
        return None, None, f"its checkpoint cannot be used ({err}); training again from epoch 1"
    if {int(r["epoch"]) for r in rows} != set(range(1, state["epoch"] + 1)):
        return None, None, f"its metrics.csv lacks epochs before {state['epoch']}; training again from epoch 1"
    return state, rows, f"resuming from its checkpoint after epoch {state['epoch']}"


def is_set_aside(folder: Path) -> bool:
    """Whether folder is an earlier attempt's files that set_aside moved (<name>.<kind>-<time>)."""
    return any(f".{kind}-" in Path(folder).name for kind in ("incomplete", "superseded"))


def interrupted_run(root: Path, chash: str) -> tuple[Path | None, str]:
    """A single run (no -m) gets a new timestamped folder under root (outputs/<task>-<optimizer>-<head>/),
    so a re-run of its command line would never find the run it interrupted. This finds it: (the newest
    folder under root that an unfinished run of hash chash left with a checkpoint, what was found in a
    few words); (None, why a new folder is right) when there is none. Set-aside folders are earlier
    attempts' files, never a run to continue; a folder a live process trains is left to it."""
    from .checkpoint import CHECKPOINT
    root = Path(root)
    found = [p for p in root.iterdir() if p.is_dir() and not is_set_aside(p)] if root.is_dir() else []
    found.sort(key=lambda p: (p / SUMMARY).stat().st_mtime if (p / SUMMARY).exists() else 0, reverse=True)
    others, notes = 0, []
    for folder in found:
        summary = read_summary(folder)
        if summary is None or summary.get("status") == "complete":
            continue
        if summary.get("config_hash") != chash:
            others += 1
            continue
        action, _, why = decide(folder, chash)
        if action == "busy":
            notes.append(f"{folder} is being trained now ({why})")
        elif not (folder / CHECKPOINT).exists():
            notes.append(f"{folder} stopped without a checkpoint")
        else:
            epoch = max((m.get("epochs_run") or 0 for m in summary.get("members", [])), default=0)
            return folder, f"status {summary.get('status')!r} after epoch {epoch}"
    if others:
        notes.append(f"{others} unfinished run{'s' if others > 1 else ''} there {'are' if others > 1 else 'is'} "
                     "of another config")
    return None, "; ".join(notes) or "no unfinished run of this config there"
