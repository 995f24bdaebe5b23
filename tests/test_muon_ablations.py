"""The optimizer registry, and Muon's ablations, each against a plain reference written here:
momentum=0 (the orthogonalised gradient), ns_steps=0 (Nesterov momentum over its Frobenius norm) and
split=all (Muon on the embedding and the head too)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from grokmuon import optimizers
from grokmuon.config import validate
from grokmuon.optim import BatchedAdamW, BatchedMuon, build_optimizers
from grokmuon.train import build_model

CONF = Path(__file__).resolve().parents[1] / "conf" / "optimizer"
A, B, C = 3.4445, -4.7750, 2.0315


def test_registry_names_match_the_yaml_files_and_build_by_name():
    assert {"adamw", "muon"} <= set(optimizers.names())
    assert set(optimizers.names()) == {f.stem for f in CONF.glob("*.yaml")}     # one YAML per module
    for name in optimizers.names():
        assert callable(optimizers.get(name).build)
    with pytest.raises(ValueError, match="allowed: adamw, muon, normuon"):
        optimizers.get("sgd")


def plain_ns(g: torch.Tensor, steps: int, eps: float = 1e-7) -> torch.Tensor:
    """Newton-Schulz on one matrix, written out: normalise, then steps of X <- aX + (bA + cA^2)X."""
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / max(x.norm().item(), eps)
    for _ in range(steps):
        a = x @ x.T
        x = A * x + (B * a + C * a @ a) @ x
    return x.T if g.shape[0] > g.shape[1] else x


def plain_muon(w, grads, lr, wd, mu, nesterov, ns_steps):
    """One member's matrix w [rows, cols] after Muon steps on grads, each line the textbook form."""
    w, buf = w.clone(), torch.zeros_like(w)
    scale = math.sqrt(max(1.0, w.shape[0] / w.shape[1]))
    for g in grads:
        buf = mu * buf + (1 - mu) * g
        u = (1 - mu) * g + mu * buf if nesterov else buf
        w = w * (1 - lr * wd) - lr * scale * plain_ns(u, ns_steps)
    return w


@pytest.mark.parametrize("shape", [(3, 12, 20), (2, 24, 8)], ids=["wide", "tall"])
@pytest.mark.parametrize("ablation", [dict(momentum=0.0, ns_steps=5), dict(momentum=0.95, ns_steps=0),
                                      dict(momentum=0.9, ns_steps=0, nesterov=False),
                                      dict(momentum=0.95, ns_steps=5)],
                         ids=["no momentum", "no orthogonalisation", "no orth, heavy ball", "full Muon"])
def test_muon_ablations_equal_plain_reference_per_member(shape, ablation):
    """Member e's slice after 4 steps equals the plain reference on member e alone (fp32 throughout; the
    tolerance, 1e-5 of the scaled lr per entry plus float32 rounding of the weight, is far below any
    update's entries, ~0.1 of it)."""
    E, rows, cols = shape
    ablation = dict(ablation)                                  # the parameter is shared across shapes
    nesterov = ablation.pop("nesterov", True)
    lr, wd = 0.02, 0.1
    w0 = torch.randn(shape)
    grads = [torch.randn(shape) * 10.0 ** (s - 2) for s in range(4)]       # scales 0.01 .. 10
    p = torch.nn.Parameter(w0.clone())
    opt = BatchedMuon([p], lr=lr, weight_decay=wd, nesterov=nesterov, ns_dtype=torch.float32, **ablation)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    tol = 1e-5 * lr * math.sqrt(max(1.0, rows / cols))
    for e in range(E):
        expected = plain_muon(w0[e], [g[e] for g in grads], lr, wd, ablation["momentum"], nesterov,
                              ablation["ns_steps"])
        torch.testing.assert_close(p.detach()[e], expected, rtol=1e-6, atol=tol)
    assert not torch.allclose(p.detach(), w0)


def test_without_orthogonalisation_the_update_has_unit_frobenius_norm():
    """ns_steps=0, momentum=0, no decay: each member moves by lr * scale * g / ||g||_F, whatever g's size."""
    p = torch.nn.Parameter(torch.zeros(2, 6, 10))
    opt = BatchedMuon([p], lr=0.5, weight_decay=0.0, momentum=0.0, ns_steps=0, ns_dtype=torch.float32)
    p.grad = torch.randn(2, 6, 10) * torch.tensor([1e-3, 1e3])[:, None, None]
    opt.step()
    torch.testing.assert_close(p.detach().flatten(1).norm(dim=1), torch.tensor([0.5, 0.5]))


def test_ablations_pass_validation_and_reach_the_optimizer(compose_cfg):
    cfg = compose_cfg("optimizer=muon", "optimizer.momentum=0", "optimizer.ns_steps=0", "task=modadd",
                      "task.p=13")
    validate(cfg)
    model = build_model(cfg, [0], torch.device("cpu"))
    muon, _ = build_optimizers(model, cfg.optimizer)
    assert muon.defaults["momentum"] == 0 and muon.defaults["ns_steps"] == 0


def params_of(opt):
    return [p for g in opt.param_groups for p in g["params"]]


def test_split_all_sends_every_matrix_to_muon_and_matches_torch_muon(compose_cfg):
    """split=all: the embedding and the head [E, V, D] join the hidden matrices under Muon, AdamW keeps
    the gains; each member's embedding and head get torch.optim.Muon's update on that [V, D] matrix."""
    cfg = compose_cfg("optimizer=muon", "optimizer.split=all", "optimizer.ns_dtype=bf16", "model.n_layers=2",
                      "task=modadd", "task.p=13", "seeds=[0,1]")
    validate(cfg)
    model = build_model(cfg, [0, 1], torch.device("cpu"))
    muon, adamw = build_optimizers(model, cfg.optimizer)
    assert isinstance(muon, BatchedMuon) and isinstance(adamw, BatchedAdamW)
    muon_ids = {id(p) for p in params_of(muon)}
    names = {n for n, p in model.named_parameters() if id(p) in muon_ids}
    assert names == {"embed", "head"} | {f"layers.{i}.{k}" for i in range(2) for k in ("wqkv", "wo", "w13", "w2")}
    assert all(p.dim() == 2 for p in params_of(adamw))                     # gains [E, D] only
    assert len(params_of(muon)) + len(params_of(adamw)) == len(list(model.parameters()))
    o = cfg.optimizer
    refs = {}
    for name in ("embed", "head"):
        w = getattr(model, name)
        refs[name] = [torch.nn.Parameter(w.detach()[e].clone()) for e in range(2)]
    ref_opt = torch.optim.Muon([q for qs in refs.values() for q in qs], lr=o.lr, weight_decay=o.weight_decay,
                               momentum=o.momentum, nesterov=o.nesterov)
    for _ in range(3):
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        for name, qs in refs.items():
            for e, q in enumerate(qs):
                q.grad = getattr(model, name).grad[e].clone()
        muon.step()
        adamw.step()
        ref_opt.step()
    for name, qs in refs.items():
        V, D = qs[0].shape
        tol = 1e-3 * o.lr * math.sqrt(max(1.0, V / D))
        torch.testing.assert_close(getattr(model, name).detach(), torch.stack([q.detach() for q in qs]),
                                   rtol=0, atol=tol)


def test_split_hidden_stays_the_default(compose_cfg):
    cfg = compose_cfg("optimizer=muon", "task=modadd", "task.p=13")
    assert cfg.optimizer.split == "hidden"
    model = build_model(cfg, [0], torch.device("cpu"))
    muon, _ = build_optimizers(model, cfg.optimizer)
    assert {id(p) for p in params_of(muon)} == {id(p) for p in model.hidden_matrices()}
