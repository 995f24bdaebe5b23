"""The test run CI makes: .ci/run calls `make test`, the README's test command, which runs pytest; a test
skipped outside the gpu marker fails that run (tests/skipcheck.py), with the reason printed; the
command-line tests find a `grokmuon` to run even without the console script."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, grokmuon_exe

TESTS = Path(__file__).resolve().parent


def test_ci_runs_make_test_which_is_the_readmes_test_command_and_runs_pytest():
    ci = (REPO / ".ci" / "run").read_text()
    assert [ln for ln in ci.splitlines() if ln and not ln.startswith("#")][-1] == "make test"
    assert "make test" in (REPO / "README.md").read_text()
    make = (REPO / "Makefile").read_text()
    recipe = make.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "-m pytest" in recipe


def make_test_words(*args: str, **env: str) -> list[str]:
    """The pytest command `make test` would run here (make -n), split into words."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OMP_")}, **env}
    out = subprocess.run(["make", "-n", "test", *args], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    (line,) = [ln for ln in out.splitlines() if "-m pytest" in ln]
    return line.split()


def test_make_test_runs_a_worker_per_cpu_whatever_omp_num_threads_says_and_args_win():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    words = make_test_words()
    assert words[words.index("-n") + 1] == (str(cpus) if cpus > 1 else "0")      # one CPU: in process
    assert words[words.index("--dist") + 1] == "loadgroup"
    # nproc reports OMP_NUM_THREADS, which the project sets to 1, unless the Makefile unsets it
    assert make_test_words(OMP_NUM_THREADS="1", OMP_THREAD_LIMIT="1") == words
    assert make_test_words("JOBS=1")[words.index("-n") + 1] == "0"
    assert make_test_words("ARGS=-n 0 -k x")[-4:] == ["-n", "0", "-k", "x"]          # ARGS come last


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "skipcheck", "-rs", "-p", "no:cacheprovider",
                           *args, str(folder)], capture_output=True, text=True, env=env, cwd=folder, timeout=120)


# `make test` runs pytest-xdist workers, which report to the controlling process: the rule holds either way.
WORKERS = pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])


@WORKERS
def test_a_skip_outside_the_gpu_marker_fails_the_run_and_says_why(tmp_path, workers):
    (tmp_path / "test_some.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.gpu\ndef test_needs_cuda():\n    pytest.skip('no CUDA GPU here')\n\n"
        "def test_runs():\n    pass\n")
    allowed = pytest_in(tmp_path, *workers)
    assert allowed.returncode == 0, allowed.stdout
    assert "no CUDA GPU here" in allowed.stdout and "1 passed, 1 skipped" in allowed.stdout
    (tmp_path / "test_other.py").write_text(
        "import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('the tool is missing')\n")
    fails_saying(tmp_path, workers, "the tool is missing", "test_needs_a_tool")


def fails_saying(folder, workers, reason: str, where: str) -> None:
    """pytest in folder fails the run on its one skip outside the gpu marker, giving the reason (-rs) and where."""
    failed = pytest_in(folder, *workers)
    assert failed.returncode == 1, failed.stdout
    assert reason in failed.stdout
    assert "1 test(s) skipped outside the gpu marker" in failed.stdout and where in failed.stdout


@WORKERS
def test_a_module_skipped_while_collected_fails_the_run_and_says_why(tmp_path, workers):
    (tmp_path / "test_some.py").write_text("def test_runs():\n    pass\n")
    (tmp_path / "test_tool.py").write_text(
        "import pytest\n\npytest.importorskip('no_such_tool_here')\n\ndef test_uses_it():\n    pass\n")
    fails_saying(tmp_path, workers, "could not import 'no_such_tool_here'", "test_tool.py")


def test_without_the_console_script_the_cli_tests_run_python_m_grokmuon(tmp_path):
    shim = grokmuon_exe(bindir=tmp_path)                   # as if the interpreter's folder had no script
    assert shim != str(tmp_path / "grokmuon") and Path(shim).exists()
    done = subprocess.run([shim, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("grokmuon "), done.stderr
