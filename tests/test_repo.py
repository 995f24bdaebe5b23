"""The repository's front door: `make clean` never touches a tracked file, and what README.md and docs/
quote (commands, repo paths) is real."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What a build or a scratch run leaves behind, all ignored by git: `make clean` must remove each one.
SCRATCH = (".venv/bin/python", "build/lib/x.py", "dist/grokmuon.whl", "grokmuon.egg-info/PKG-INFO",
           "outputs/modadd-muon-softmax/t/metrics.csv", "wandb/run/x", ".pytest_cache/v/x",
           "multirun/smoke/modadd-muon-softmax-0/summary.json", "results/smoke/runs.csv",
           "grokmuon/__pycache__/x.pyc", "tests/__pycache__/x.pyc")


@pytest.mark.skipif(not (REPO / ".git").exists() or not shutil.which("git") or not shutil.which("make"),
                    reason="needs a git checkout, git and make")
def test_make_clean_removes_scratch_and_never_a_tracked_file(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=300)
    for name in ("Makefile", ".gitignore"):          # this checkout's versions, committed or not
        shutil.copy(REPO / name, clone / name)
    for rel in SCRATCH:
        (clone / rel).parent.mkdir(parents=True, exist_ok=True)
        (clone / rel).write_text("scratch\n")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert {ln[3:] for ln in status.stdout.splitlines()} <= {"Makefile", ".gitignore"}, status.stdout  # all ignored
    tracked = subprocess.run(["git", "ls-files"], cwd=clone, capture_output=True, text=True, check=True).stdout
    assert "multirun/" in tracked and "results/" in tracked       # there are committed results to lose

    done = subprocess.run(["make", "clean"], cwd=clone, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    changed = {ln[3:]: ln[:2] for ln in status.stdout.splitlines()}
    assert not [p for p, code in changed.items() if "D" in code], status.stdout      # no tracked file deleted
    assert set(changed) <= {"Makefile", ".gitignore"}, status.stdout
    assert all((clone / p).is_file() for p in tracked.splitlines())
    assert [rel for rel in SCRATCH if (clone / rel).exists()] == []


def test_every_make_target_does_something():
    """A phony target with no recipe answers `make <target>` with "Nothing to be done" and exit 0: a user
    who typed `make smoke` would think the pipeline ran. `make -n -B` prints each target's commands as if
    everything were out of date, and runs none."""
    phony = re.search(r"^\.PHONY:(.*)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
    assert {"run", "test", "smoke", "clean"} <= set(phony)
    for target in phony:
        dry = subprocess.run(["make", "-n", "-B", target], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, (target, dry.stderr)
        assert "Nothing to be done" not in dry.stdout + dry.stderr, target
        assert dry.stdout.strip(), target


def test_the_readme_names_every_option_of_every_config_group():
    """README.md's table of config groups is where a newcomer learns what `group=option` may say: it lists
    each group's options in conf/, no more and no fewer (an experiment added without it was missed once)."""
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", (REPO / "README.md").read_text(), re.M)
    listed = {group: {re.sub(r"\s*\(.*\)", "", o).strip() for o in options.split(",")} for group, options in rows}
    groups = {p.name for p in (REPO / "conf").iterdir() if p.is_dir()}
    assert groups <= set(listed), groups - set(listed)
    for group in groups:
        assert listed[group] == {p.stem for p in (REPO / "conf" / group).glob("*.yaml")}, group


# --- what README.md and docs/*.md quote -------------------------------------------------------------------
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Folders the documented scratch commands make (ignored by git), so they need not exist in a checkout.
MADE_BY_COMMANDS = ("results/smoke", "results/default", "results/all", "multirun/smoke",
                    "results/paper")     # the GPU campaign makes it (docs/gpu.md)


def shell_words(line: str) -> list[str]:
    """A shell line as the shell splits it: quotes removed, `# comment` dropped, && ; | as their own words."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    return list(lex)


def unquoted(line: str) -> str:
    """The characters of a shell line outside quotes, up to a comment."""
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            break
        else:
            out.append(ch)
    return "".join(out)


def quoted_commands() -> list[tuple[str, str]]:
    """(where, command line) of every `grokmuon ...` command in a fenced block or an inline code span;
    synopses with placeholders (`<name>`, `[--out PATH]`, `...`) are left out."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        lines = []
        fenced = False
        for n, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            spans = [line] if fenced else re.findall(r"`([^`]+)`", line)
            lines += [(f"{doc.name}:{n}", s) for s in spans]
        for where, span in lines:
            if not re.search(r"(^|[\s;&|/])grokmuon\s", span):
                continue
            try:
                words = shell_words(span)
            except ValueError:          # an unclosed quote: test_each_quoted_command_parses says so
                found.append((where, span))
                continue
            cmds = grokmuon_commands(words)
            if cmds and not any(w in ("<", ">") or w.startswith("[-") or "..." in w or w.isupper()
                                for cmd in cmds for w in cmd):      # a synopsis is not a command
                found.append((where, span))
    return found


def grokmuon_commands(words: list[str]) -> list[list[str]]:
    """The arguments of each `grokmuon` command among a shell line's words (after grokmuon, or
    .venv/bin/grokmuon; commands joined by && ; | count apart)."""
    commands, current = [], []
    for w in words + [";"]:
        if w in ("&&", ";", "|", "||", "&"):
            if len(current) > 1 and current[0].rsplit("/", 1)[-1] == "grokmuon":
                commands.append(current[1:])
            current = []
        else:
            current.append(w)
    return commands


COMMANDS = quoted_commands()


CHECKED: set[tuple[str, ...]] = set()      # train command lines already prechecked (a sweep takes seconds)


class Parsed(Exception):
    """Raised where a subcommand would start its work: its command line parsed and passed its checks."""


def test_the_docs_quote_commands():
    subs = set()
    for _, line in COMMANDS:
        try:
            subs |= {args[0] for args in grokmuon_commands(shell_words(line))}
        except ValueError:      # an unclosed quote: the test below fails on it
            pass
    assert len(COMMANDS) >= 30 and {"train", "tune", "collect", "report", "figures", "bench"} <= subs


@pytest.mark.parametrize("where,line", COMMANDS, ids=[f"{w}" for w, _ in COMMANDS])
def test_each_quoted_command_parses(where, line, monkeypatch, capsys):
    """Every `grokmuon ...` in README.md and docs/ parses: train's overrides compose and validate
    (precheck, every value of a sweep; the machine checks such as CUDA are left out), the other commands'
    arguments pass their parser. Nothing trains or writes. Lists are quoted, so zsh does not glob them."""
    from grokmuon import bench, config, precheck, tune
    code = unquoted(line)
    assert not set("[]{}*?") & set(code), f"{where}: quote the argument with brackets: {line}"
    monkeypatch.setattr(precheck, "check_environment", lambda cfg: None)
    real_parse_args = config.Parser.parse_args

    def parse_then_stop(self, *a, **k):
        real_parse_args(self, *a, **k)
        raise Parsed
    monkeypatch.setattr(config.Parser, "parse_args", parse_then_stop)
    monkeypatch.setattr(tune, "train", lambda overrides: (_ for _ in ()).throw(Parsed()))
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: True)     # --device cuda parses anywhere
    for args in grokmuon_commands(shell_words(line)):
        sub, rest = args[0], args[1:]
        if sub == "train":          # what train_cmd checks before Hydra starts, without --cfg/--help
            rest = [w for i, w in enumerate(rest) if w not in ("--cfg", "-c", "--help", "-h")
                    and not (i and rest[i - 1] in ("--cfg", "-c"))]
            key = tuple(w for w in rest if not w.startswith("hydra") or w.startswith("hydra.sweeper.params"))
            if key not in CHECKED:   # precheck skips Hydra's own keys: launchers share one check
                precheck.precheck(rest)
                CHECKED.add(key)
            continue
        from grokmuon.cli import main
        with pytest.raises((Parsed, SystemExit)) as e:
            main(args)
        assert e.type is Parsed or e.value.code == 0, f"{where}: {line}\n{capsys.readouterr().err}"


PATH = re.compile(r"(?<![\w./-])((?:results|scripts|docs|grokmuon|conf|tests|multirun)/[\w.*/-]*)(.?)")


def named_paths() -> list[tuple[str, str]]:
    """(where, path) of every repo path README.md and docs/ name; a path with a placeholder
    (`results/<name>/`) is left out."""
    out = []
    for doc in DOCS:
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            if line.lstrip().startswith("grokmuon:"):
                continue        # an example message, about made-up run folders
            for path, after in PATH.findall(line):
                if after and after in "<{$":
                    continue
                out.append((f"{doc.name}:{n}", path.rstrip(".,:;)")))
    return out


def test_each_named_path_exists():
    paths = named_paths()
    assert len(paths) >= 50
    missing = [(w, p) for w, p in paths if not p.startswith(MADE_BY_COMMANDS)
               and not (any(REPO.glob(p)) if "*" in p else (REPO / p).exists())]
    assert not missing, missing


def test_rerunning_a_sweep_leaves_its_complete_cells_byte_for_byte(tmp_path):
    """Re-running a sweep (a study lane, scripts/reproduce.sh) over complete cells, committed ones in
    multirun/ included, changes no file there: not the run's files, not Hydra's .hydra/ records, not the
    sweep's multirun.yaml. The second launch differs in a key the config hash leaves out (eval_chunk), so
    Hydra's records of it would differ."""
    import os
    import sys
    sweep = tmp_path / "sweep"
    run = [sys.executable, "-m", "grokmuon", "train", "-m", "experiment=smoke", f"hydra.sweep.dir={sweep}",
           "hydra.sweeper.params.task=parity", "hydra.sweeper.params.optimizer=muon"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    first = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    (cell,) = [p for p in sweep.iterdir() if p.is_dir()]
    assert {p.name for p in (cell / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    assert (cell / ".hydra" / "overrides.yaml").read_text() == "- task=parity\n- optimizer=muon\n- experiment=smoke\n"
    assert "eval_chunk: 0" in (cell / ".hydra" / "config.yaml").read_text()
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    assert sweep / "multirun.yaml" in before

    again = subprocess.run(run + ["eval_chunk=512"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"skip: {cell} already complete" in again.stdout
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before
