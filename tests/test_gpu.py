"""GPU checks (marker gpu: `pytest -m gpu`, skipped without CUDA; scripts/gpu_campaign.sh runs them):
a CUDA smoke run in fp32 and bf16, a member equal to its solo run on CUDA, bf16 Newton-Schulz against fp32, and the
deterministic mode docs/robustness.md describes, and the compiled step against eager."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from grokmuon.optim import newton_schulz
from grokmuon.train import train
from conftest import REPO, compose_config

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = ["device=cuda", "task=modadd", "task.p=13", "batch_size=32", "model.n_layers=2", "max_epochs=3", "patience=0"]


def history(cfg):
    rows = []
    results = train(cfg, on_epoch=lambda e, numbers, _: rows.append({k: list(v) for k, v in numbers.items()}))
    return results, rows


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_cuda_run_trains_with_finite_losses(optimizer, precision):
    """bf16 too: its first GPU run failed inside cuDNN's attention (results/gpu/README.md)."""
    results, rows = history(compose_config(*CUDA, f"optimizer={optimizer}", f"precision={precision}", "seeds=[0,1]"))
    assert len(rows) == 3 and all(torch.isfinite(torch.tensor(r["train_loss"])).all() for r in rows)
    assert rows[-1]["train_loss"] != rows[0]["train_loss"]


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_cuda_member_equals_solo_run(optimizer):
    """On CUDA, member generators live on the device; member e still equals a solo run with its seed
    (float tolerance: batched kernels may round differently)."""
    _, solo = history(compose_config(*CUDA, f"optimizer={optimizer}", "seeds=[5]", "optimizer.ns_dtype=fp32"))
    _, ens = history(compose_config(*CUDA, f"optimizer={optimizer}", "seeds=[11,5,2]", "optimizer.ns_dtype=fp32"))
    for s, e in zip(solo, ens):
        assert e["train_loss"][1] == pytest.approx(s["train_loss"][0], rel=1e-4, abs=1e-5)


def test_bf16_newton_schulz_is_close_to_fp32():
    g = torch.randn(16, 64, 256, device="cuda")
    exact = newton_schulz(g, dtype=torch.float32)
    bf16 = newton_schulz(g, dtype=torch.bfloat16).float()
    rel = ((bf16 - exact).norm(dim=(1, 2)) / exact.norm(dim=(1, 2))).max().item()
    assert rel < 0.05, rel                     # bf16 keeps ~3 significant digits; 5 NS steps compound it


def test_deterministic_mode_gives_identical_runs(tmp_path):
    """The recipe in docs/robustness.md: the same seed twice, bit-identical metrics."""
    code = ("import sys, torch; torch.use_deterministic_algorithms(True); "
            "from grokmuon.cli import main; main(sys.argv[1:])")
    outs = []
    for i in range(2):
        folder = tmp_path / f"r{i}"
        env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "WANDB_MODE": "disabled"}
        r = subprocess.run([sys.executable, "-c", code, "train", "device=cuda", "model=tiny", "logger=none",
                            "progress=false", "task=modadd", "task.p=23", "max_epochs=5", "seeds=[0,1]",
                            f"hydra.run.dir={folder}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append([ln.split(",")[:9] for ln in (folder / "metrics.csv").read_text().splitlines()])
    assert outs[0] == outs[1]


def test_cuda_run_resumes_from_its_checkpoint(tmp_path):
    """Per-member lr/decay tensors and device generators come back onto the GPU (numbers equal up to GPU
    rounding: CUDA kernels are not bit-deterministic by default)."""
    from grokmuon import checkpoint
    cfg = compose_config(*CUDA, "optimizer=muon", "seeds=[0,1]", "grid.lr=[0.01,0.02]", "max_epochs=4")
    _, full = history(cfg)
    cut = []
    train(cfg, on_epoch=lambda e, n, _: cut.append(e), should_stop=lambda: len(cut) >= 2,
          saver=checkpoint.Saver(tmp_path, "h"))
    rows = []
    train(cfg, on_epoch=lambda e, n, _: rows.append({k: list(v) for k, v in n.items()}),
          resume=checkpoint.load(tmp_path / checkpoint.CHECKPOINT, "h"))
    assert len(rows) == 2
    for got, want in zip(rows, full[2:]):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-3)


def test_cuda_compiled_step_equals_eager():
    """compile=step on CUDA (torch.compile, CUDA graphs) against eager with the same hashed masks: the
    curves to float rounding and the memorisation and grokking epochs exactly. scripts/gpu_campaign.sh
    with COMPILE=auto compiles the grid only when this passed in the same call."""
    common = [*CUDA, "model=tiny", "task.p=11", "batch_size=40", "task.train_frac=0.6", "seeds=[0,1]",
              "optimizer=muon", "max_epochs=30", "optimizer.ns_dtype=fp32"]
    eager, rows_e = history(compose_config(*common, "dropout_masks=hash"))
    comp, rows_c = history(compose_config(*common, "compile=step"))
    for a, b in zip(rows_e, rows_c):
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-3, abs=1e-4)
    assert [(r.memorisation_epoch, r.grokking_epoch) for r in comp] == \
        [(r.memorisation_epoch, r.grokking_epoch) for r in eager]
