"""README.md's example optimizer loads as a module of the registry's package, builds for a real
model, and its update equals a plain one-matrix loop on every member's slice."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch

from grokmuon.optimizers import names
from grokmuon.train import build_model

DOC = Path(__file__).resolve().parents[1] / "README.md"


def load_example(tmp_path):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    assert len(code.splitlines()) <= 30                          # the promised size
    path = tmp_path / "signum.py"
    path.write_text(code)
    # A module of grokmuon.optimizers (its relative imports resolve there) without writing into the package.
    spec = importlib.util.spec_from_file_location("grokmuon.optimizers._doc_signum", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_optimizer_trains_each_member_as_a_plain_loop(tmp_path, compose_cfg):
    signum = load_example(tmp_path)
    assert "signum" not in names()                               # an example, not shipped
    cfg = compose_cfg("optimizer=adamw", "optimizer.momentum=0.9", "task=modadd", "task.p=13", "seeds=[0,1]")
    model = build_model(cfg, [0, 1], torch.device("cpu"))
    lr = torch.tensor([1e-3, 3e-3])
    (opt,) = signum.build(model, cfg.optimizer, lr, 0.1)
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = [{n: torch.randn_like(p) for n, p in model.named_parameters()} for _ in range(3)]
    for g in grads:
        for n, p in model.named_parameters():
            p.grad = g[n].clone()
        opt.step()
    for n, p in model.named_parameters():
        for e in range(2):
            w, buf = w0[n][e].clone(), torch.zeros_like(w0[n][e])
            for g in grads:
                w = w * (1 - lr[e].item() * 0.1)
                buf = 0.9 * buf + 0.1 * g[n][e]
                w = w - lr[e].item() * torch.sign(buf)
            torch.testing.assert_close(p.detach()[e], w, rtol=1e-6, atol=1e-7)
