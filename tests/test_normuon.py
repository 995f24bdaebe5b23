"""NorMuon (grokmuon/optimizers/normuon.py) against a plain reference written here: one member's matrix,
one row at a time, the steps of the authors' normuon_update in their order, over several steps (state
carried); and `optimizer=normuon` from the config to the optimizer."""
from __future__ import annotations

import math

import pytest
import torch

from grokmuon.config import validate
from grokmuon.optim import BatchedAdamW, build_optimizers
from grokmuon.optimizers.normuon import BatchedNorMuon
from grokmuon.train import build_model

A, B, C = 3.4445, -4.7750, 2.0315


def plain_ns(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / max(x.norm().item(), 1e-7)
    for _ in range(steps):
        a = x @ x.T
        x = A * x + (B * a + C * a @ a) @ x
    return x.T if g.shape[0] > g.shape[1] else x


def plain_normuon(w, grads, lr, wd, mu, beta2, blocks=1):
    """Member w [rows, cols] (k = blocks stacked matrices) after NorMuon steps on grads."""
    w, buf = w.clone(), torch.zeros_like(w)
    rows, cols = w.shape
    r = rows // blocks
    v = [0.0] * rows                                   # each row's mean-square EMA
    scale = math.sqrt(max(1.0, r / cols))
    for g in grads:
        buf = mu * buf + (1 - mu) * g
        u = (1 - mu) * g + mu * buf
        o = torch.cat([plain_ns(u[b * r:(b + 1) * r]) for b in range(blocks)])
        n = torch.empty_like(o)
        for i in range(rows):
            v[i] = beta2 * v[i] + (1 - beta2) * float((o[i] ** 2).sum()) / cols
            n[i] = o[i] / (math.sqrt(v[i]) + 1e-10)
        for b in range(blocks):
            sl = slice(b * r, (b + 1) * r)
            n[sl] = n[sl] * (o[sl].norm() / (n[sl].norm() + 1e-10))
        w = w * (1 - lr * wd) - lr * scale * n
    return w


@pytest.mark.parametrize("shape,blocks", [((3, 12, 20), 1), ((2, 24, 8), 1), ((2, 24, 8), 3)],
                         ids=["wide", "tall", "three blocks"])
def test_normuon_equals_plain_reference_per_member(shape, blocks):
    """Member e's slice after 4 steps (gradients 0.01 .. 10 in size) equals the reference on member e."""
    E, rows, cols = shape
    lr, wd, mu, beta2 = 0.02, 0.1, 0.95, 0.9
    w0 = torch.randn(shape)
    grads = [torch.randn(shape) * 10.0 ** (s - 2) for s in range(4)]
    p = torch.nn.Parameter(w0.clone())
    p.row_blocks = blocks
    opt = BatchedNorMuon([p], beta2=beta2, lr=lr, weight_decay=wd, momentum=mu, ns_dtype=torch.float32)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    tol = 1e-5 * lr * math.sqrt(max(1.0, rows / blocks / cols))
    for e in range(E):
        expected = plain_normuon(w0[e], [g[e] for g in grads], lr, wd, mu, beta2, blocks)
        torch.testing.assert_close(p.detach()[e], expected, rtol=1e-6, atol=tol)
    assert opt.state[p]["second_momentum_buffer"].shape == (E, rows, 1)


def test_the_normalisation_evens_out_the_rows_and_keeps_the_norm():
    """One step from rows of very different sizes: the update's rows come out near one size (Muon's do
    not), and its Frobenius norm is Muon's (lr * scale * ||O||_F)."""
    torch.manual_seed(0)
    g = torch.randn(1, 8, 32) * torch.logspace(-2, 1, 8)[None, :, None]
    p = torch.nn.Parameter(torch.zeros(1, 8, 32))
    opt = BatchedNorMuon([p], lr=1.0, weight_decay=0.0, momentum=0.0, ns_dtype=torch.float32)
    p.grad = g
    opt.step()
    step = -p.detach()[0]
    o = plain_ns(g[0])
    row_sizes = step.norm(dim=1)
    assert row_sizes.max() / row_sizes.min() < 1.01 < o.norm(dim=1).max() / o.norm(dim=1).min()
    torch.testing.assert_close(step.norm(), o.norm(), rtol=1e-5, atol=0)


def test_optimizer_normuon_builds_from_the_config(compose_cfg):
    cfg = compose_cfg("optimizer=normuon", "optimizer.normuon_beta2=0.9", "task=modadd", "task.p=13")
    validate(cfg)
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, cfg.optimizer.momentum) == (0.02, 0.05, 0.95)
    model = build_model(cfg, [0], torch.device("cpu"))
    normuon, adamw = build_optimizers(model, cfg.optimizer)
    assert isinstance(normuon, BatchedNorMuon) and isinstance(adamw, BatchedAdamW)
    assert normuon.defaults["beta2"] == 0.9
    assert {id(p) for g in normuon.param_groups for p in g["params"]} == {id(p) for p in model.hidden_matrices()}
