"""The Fourier probes inside a run: every probe_every epochs and at the run's last, blank between, on the
tasks they are defined for, and the numbers of the weights the run ends with."""
from __future__ import annotations

import math

import pandas as pd
import torch

from grokmuon import fourier
from grokmuon.checkpoint import load_member
from grokmuon.job import main as train_main

FAST = ["model=tiny", "logger=none", "progress=false", "device=cpu", "task.p=13", "batch_size=32",
        "patience=0"]


def run(tmp_path, *over):
    folder = tmp_path / "run"
    try:
        train_main([*FAST, *over, f"hydra.run.dir={folder}"])
    except SystemExit as e:
        assert e.code in (0, None)
    return folder, pd.read_csv(folder / "metrics.csv")


def test_fourier_probes_every_nth_epoch_and_at_the_last(tmp_path):
    folder, m = run(tmp_path, "task=modadd", "max_epochs=7", "probe_every=3", "seeds=[0,1]")
    probed = sorted(m.loc[m["fourier_gini"].notna(), "epoch"].unique())
    assert probed == [3, 6, 7]                                  # every 3rd and the last (the budget)
    last = m[m.epoch == 7].sort_values("member")
    assert ((last["fourier_gini"] >= 0) & (last["fourier_gini"] <= 1)).all()
    keys = last[[f"key_freq_{i}" for i in range(1, 6)]]
    assert ((keys >= 1) & (keys <= 6)).all().all()                 # frequencies 1..(13-1)/2
    assert (last["restricted_loss"] > 0).all() and (last["excluded_loss"] > 0).all()
    for e in (0, 1):                                           # the numbers of the weights it ended with
        model, _ = load_member(folder / "weights.pt", member=e)
        probes = fourier.embedding_probes(model.embed.detach().float(), "modadd", 13)
        row = last[last.member == e].iloc[0]
        assert math.isclose(row["fourier_gini"], float(probes["fourier_gini"][0]), rel_tol=1e-5)
        assert [int(row[f"key_freq_{i}"]) for i in range(1, 6)] == probes["key_freqs"][0].tolist()


def test_fourier_probes_are_blank_where_they_do_not_apply_and_when_off(tmp_path):
    _, m = run(tmp_path, "task=gcd", "max_epochs=3", "probe_every=1")
    assert m["fourier_gini"].isna().all() and m["restricted_loss"].isna().all()
    _, m = run(tmp_path / "off", "task=modadd", "max_epochs=3", "probe_every=0")
    assert m["fourier_gini"].isna().all()
