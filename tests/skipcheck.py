"""No silent skip: a test skipped outside the gpu marker fails the pytest run (tests/conftest.py loads
this plugin; CI runs `make test`). A test skipped for a missing tool, a privilege or a device would
otherwise pass unseen, as the read-only folder test once did when CI ran it as root. pyproject's -rs
prints each skip's reason; the gpu marker's tests may skip where there is no CUDA GPU. A module skipped
whole while collected (a module-level pytest.skip or importorskip) fails the run too: the gpu marker's
tests skip through their skipif mark, never at collection. Under pytest-xdist (`make test`) the workers
send every report to the controlling process, whose copy of these hooks sees them all and decides."""
from __future__ import annotations

import pytest

ALLOWED_SKIP_MARKERS = ("gpu",)
_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail") and \
            not any(m in report.keywords for m in ALLOWED_SKIP_MARKERS):
        _skipped.append(report.nodeid)


def pytest_collectreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    if _skipped:
        terminalreporter.write_line(f"grokmuon: {len(_skipped)} test(s) skipped outside the gpu marker, which "
                                    f"fails the run: {', '.join(_skipped)}", red=True)


def pytest_sessionfinish(session, exitstatus):
    if _skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
