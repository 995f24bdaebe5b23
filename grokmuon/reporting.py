"""`grokmuon collect | report | figures`: argument parsing and file paths; the work is in results.py,
report.py and figures.py. Errors are one line on stderr and a non-zero exit."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .cli import Parser, fail
from .results import DEFAULT_DIRS, TableError

RESULTS = Path("results")


def no_table() -> None:
    """report/figures without --runs: name the tables there are rather than guess one."""
    here = sorted(str(p) for p in RESULTS.glob("*/runs.csv"))
    fail("which table? give --runs PATH (a runs.csv from `grokmuon collect`)"
         + (f"; here: {', '.join(here[:6])}{' ...' if len(here) > 6 else ''}" if here else ""))


def from_table(runs: Path | None, use):
    """(the table's path, use(path, name)); no table given or a bad one is one line."""
    if runs is None:
        no_table()
    print(f"reading {runs}")
    try:
        return runs, use(runs, str(runs))
    except TableError as err:
        fail(str(err))


def record(folder: Path, command: str, args: list[str]) -> None:
    """Append the command to <folder>/commands.txt (once): a results folder says what made it."""
    line = f"grokmuon {command} {shlex.join(args)}".strip() + "\n"
    path = folder / "commands.txt"
    if line not in (path.read_text().splitlines(keepends=True) if path.exists() else []):
        with path.open("a") as f:
            f.write(line)


def collect_cmd(args: list[str]) -> None:
    from .results import collect
    ap = Parser(prog="grokmuon collect", description="Gather run folders into "
                                 "results/<name>/runs.csv: a row per member (see docs/sweeps.md).")
    ap.add_argument("dirs", nargs="*", help="folders searched for run folders, e.g. multirun/cpu or outputs")
    ap.add_argument("--experiment", help="keep only the runs of this experiment (e.g. paper)")
    ap.add_argument("--name", help="results/<name>/ (default: the experiment's name if there is one, else 'all')")
    ap.add_argument("--out", type=Path, help="the table's path (default: results/<name>/runs.csv)")
    a = ap.parse_args(args)
    if not a.dirs:          # never pool committed sweeps with the user's own runs by default
        fail("which runs? name the folders to collect, e.g. `grokmuon collect multirun/cpu` or "
             f"`grokmuon collect {' '.join(DEFAULT_DIRS)}`")
    missing = [d for d in a.dirs if not Path(d).is_dir()]
    if len(missing) == len(a.dirs):
        fail(f"no such folder: {', '.join(missing)}")
    table = collect(a.dirs)
    if a.experiment:
        table = table[table["experiment"] == a.experiment]
    if table.empty:
        fail(f"no readable runs{' of experiment ' + a.experiment if a.experiment else ''} in {', '.join(a.dirs)}")
    exps = sorted(table["experiment"].dropna().unique())
    out = a.out or RESULTS / (a.name or (exps[0] if len(exps) == 1 else "all")) / "runs.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    record(out.parent, "collect", args)
    done = int((table["run_status"] == "complete").sum())
    print(f"{out}: {len(table)} members ({done} of complete runs) from {table['run_dir'].nunique()} "
          f"run folders; experiments: {', '.join(exps)}")


def report_cmd(args: list[str]) -> None:
    from .report import report
    from .results import load
    ap = Parser(prog="grokmuon report", description="Statistics of a results table, "
                                 "printed and written as markdown.")
    ap.add_argument("--runs", type=Path, help="a runs.csv from collect (required)")
    ap.add_argument("--out", type=Path, help="the markdown file (default: report.md beside runs.csv)")
    a = ap.parse_args(args)
    runs, text = from_table(a.runs, lambda table, name: report(load(table), name))
    out = a.out or runs.parent / "report.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    record(out.parent, "report", args)       # beside what it wrote: a report sent elsewhere leaves no trace here
    print(text)
    print(f"written: {out}")


def figures_cmd(args: list[str]) -> None:
    from .figures import FIGURES
    from .results import finished, judged, load
    ap = Parser(prog="grokmuon figures", description="The figures of a results table, "
                                 "as PNG and PDF.")
    ap.add_argument("--runs", type=Path, help="a runs.csv from collect (required)")
    ap.add_argument("--out", type=Path, help="folder for the files (default: figures/ beside runs.csv)")
    ap.add_argument("--only", nargs="+", choices=list(FIGURES), help="make only these figures")
    a = ap.parse_args(args)
    runs, done = from_table(a.runs, lambda table, name: judged(finished(load(table), name)))
    out, failed = a.out or runs.parent / "figures", []
    from .report import scanned_axes
    from .figures import has_probes
    optional = {"scan": lambda: bool(scanned_axes(done)), "probes": lambda: has_probes(done)}
    names = a.only or [n for n in FIGURES if n not in optional or optional[n]()]
    for name in names:
        try:
            for path in FIGURES[name](done, out):
                print(path)
        except TableError as err:
            failed.append(f"figure {name}: {err}")
    if a.out is not None:
        out.mkdir(parents=True, exist_ok=True)      # even when every figure failed: the record goes here
    record(runs.parent if a.out is None else out, "figures", args)
    if failed:
        fail("; ".join(failed))




def main(command: str, args: list[str]) -> None:
    """`grokmuon <command> <args>` for collect, report and figures (tests call it in-process)."""
    {"collect": collect_cmd, "report": report_cmd, "figures": figures_cmd}[command](args)
