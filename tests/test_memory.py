"""GPU memory guard (grokmuon/memory.py): an ensemble too large for the device is refused before training,
in one line that names the size that fits; the decision is a pure function of the estimate and the free
memory, tested here with a free-memory number set by hand (no GPU needed)."""
from __future__ import annotations

import pytest
import torch

from grokmuon import memory
from grokmuon.config import ConfigError


def test_parameters_per_member_counts_the_models_weights(compose_cfg):
    from grokmuon.train import build_model
    cfg = compose_cfg("task=modadd", "model=small")
    model = build_model(cfg, [0, 1], torch.device("cpu"))
    counted = sum(p.numel() for p in model.parameters()) // 2
    m = cfg.model
    assert memory.parameters_per_member(model.shape.vocab, m.n_layers, m.d_model, m.d_mlp) == counted


def test_members_that_fit_is_the_floor_of_what_is_left_after_the_fixed_part():
    assert memory.members_that_fit(per_member=100, fixed=50, free=1000, headroom=1.0) == 9    # (1000-50)//100
    assert memory.members_that_fit(per_member=100, fixed=50, free=1000, headroom=0.5) == 4    # (500-50)//100
    assert memory.members_that_fit(per_member=100, fixed=2000, free=1000) == 0                 # not even one


def test_the_estimate_grows_with_the_ensembles_work():
    small = memory.bytes_per_member(99, 4, 2, 64, 4, 256, batch=512)
    assert memory.bytes_per_member(99, 4, 2, 128, 4, 512, batch=512) > small          # wider
    assert memory.bytes_per_member(99, 4, 2, 64, 4, 256, batch=1024) > small          # larger batch
    assert memory.bytes_per_member(99, 4, 4, 64, 4, 256, batch=512) > small           # deeper


def test_refusal_names_the_size_that_fits_in_one_line():
    assert memory.refusal(10, 10, 2**30, 20 * 2**30, "cuda:0") is None
    line = memory.refusal(420, 37, 2**30, 40 * 2**30, "cuda:0")
    assert "\n" not in line and "420 members" in line and "at most 37 members fit" in line and "cuda:0" in line
    assert "one member needs" in memory.refusal(1, 0, 2**31, 2**30, "cuda:0")


def test_check_fits_refuses_a_grid_too_large_for_the_free_memory(compose_cfg, monkeypatch):
    """The refusal path as `grokmuon train` takes it (job.train_job turns ConfigError into one line, exit 2),
    with the device's free memory set by hand; a CPU is never checked."""
    cfg = compose_cfg("task=modadd", "model=default", "experiment=paper")
    per = memory.bytes_per_member(99, 4, 2, 128, 4, 512, 512)
    fixed = memory.fixed_bytes(65536, 4, 128, 512, 99)
    monkeypatch.setattr(memory, "free_bytes", lambda device: int((fixed + 4.5 * per) / memory.HEADROOM))
    with pytest.raises(ConfigError, match="10 members need about .* at most 4 members fit"):
        memory.check_fits(cfg, torch.device("cuda"))
    monkeypatch.setattr(memory, "free_bytes", lambda device: int((fixed + 10.5 * per) / memory.HEADROOM))
    memory.check_fits(cfg, torch.device("cuda"))                  # 10 fit
    monkeypatch.setattr(memory, "free_bytes", lambda device: 0)
    memory.check_fits(cfg, torch.device("cpu"))                   # a CPU is not checked


def test_grokfast_adds_one_weight_copy_to_the_estimate(compose_cfg, monkeypatch):
    """grokfast=ema keeps an EMA of every weight: 10 members that just fit without it do not with it."""
    cfg = compose_cfg("task=modadd", "model=default", "experiment=paper", "grokfast=ema")
    per = memory.bytes_per_member(99, 4, 2, 128, 4, 512, 512)
    fixed = memory.fixed_bytes(65536, 4, 128, 512, 99)
    weights = memory.FLOAT * memory.parameters_per_member(99, 2, 128, 512)
    monkeypatch.setattr(memory, "free_bytes", lambda device: int((fixed + 10 * per + 5 * weights) / memory.HEADROOM))
    with pytest.raises(ConfigError, match="10 members need about .* at most 9 members fit"):
        memory.check_fits(cfg, torch.device("cuda"))
    monkeypatch.setattr(memory, "free_bytes", lambda device: int((fixed + 10 * per + 11 * weights) / memory.HEADROOM))
    memory.check_fits(cfg, torch.device("cuda"))


def test_train_refuses_in_one_line_without_writing(tmp_path, monkeypatch, capsys):
    """The whole command: `grokmuon train device=cuda` with too little free memory exits 2 with one line
    before a run folder gets anything (pick_device and the free memory faked, no GPU needed)."""
    import grokmuon.train as tr
    from grokmuon.cli import main
    fixed = memory.fixed_bytes(65536, 4, 32, 64, 99)
    per = memory.bytes_per_member(99, 4, 1, 32, 2, 64, 512)
    monkeypatch.setattr(memory, "free_bytes", lambda device: int((fixed + 1.5 * per) / memory.HEADROOM))
    monkeypatch.setattr(tr, "pick_device", lambda name: torch.device("cuda"))
    with pytest.raises(SystemExit) as exit_:
        main(["train", "task=modadd", "model=tiny", "seeds=[0,1,2]", "logger=none", "progress=false",
              f"hydra.run.dir={tmp_path / 'run'}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grokmuon: error:") and "\n" not in err, err
    assert "3 members need" in err and "at most 1 members fit" in err
    assert not (tmp_path / "run" / "metrics.csv").exists() and not (tmp_path / "run" / "summary.json").exists()
