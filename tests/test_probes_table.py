"""scripts/probes_at_grokking.py: the probes at each member's grokking epoch, on synthetic run folders."""
import importlib.util

import pandas as pd

from conftest import REPO
from runfolders import config, write_run

spec = importlib.util.spec_from_file_location("probes_at_grokking", REPO / "scripts" / "probes_at_grokking.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


def test_the_probe_table_reads_each_member_at_its_own_grokking_epoch(tmp_path):
    run = write_run(tmp_path / "r", config(optimizer="muon", seeds=(3, 4, 5)), [20, 30, None])
    m = pd.read_csv(run / "metrics.csv")
    m.loc[(m.member == 1) & (m.epoch == 30), "stable_rank_mean"] = 17.25      # a value only seed 4 has, at 30
    m.to_csv(run / "metrics.csv", index=False)
    rows = [r.split(" | ") for r in script.table([str(tmp_path)]).splitlines()[2:]]
    own = {r[1]: r for r in rows if r[1].startswith("seed")}
    assert set(own) == {"seed 3", "seed 4"}                                   # seed 5 never grokked
    assert own["seed 4"][2] == "30" and own["seed 4"][6] == "17.25"
    first = next(r for r in rows if r[1] == "mean at the first grokking epoch")
    assert first[2] == "20"
    expected = m[m.epoch == 20]["norm_attn"].mean()                          # every member at epoch 20
    assert first[3] == f"{expected:.2f}"
