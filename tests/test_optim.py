"""Batched Muon against torch.optim.Muon slice by slice; Newton-Schulz; the parameter split; AdamW."""
from __future__ import annotations

import math

import pytest
import torch

from grokmuon.optim import BatchedAdamW, BatchedMuon, build_optimizers, lr_scale, newton_schulz, ns_dtype
from grokmuon.train import build_model

# --- BatchedMuon == torch.optim.Muon on every member's slice ---------------------------------------

SHAPES = {"square": (3, 16, 16), "wide": (2, 12, 40), "tall": (2, 48, 8), "one member": (1, 20, 24)}
SETTINGS = [
    dict(lr=0.02, weight_decay=0.05, momentum=0.95, nesterov=True),
    dict(lr=0.05, weight_decay=0.0, momentum=0.9, nesterov=False),
    dict(lr=0.01, weight_decay=0.5, momentum=0.0, nesterov=True),
    dict(lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True, adjust_lr="match_rms_adamw"),
]


def torch_muon(params, lr, weight_decay, momentum, nesterov, adjust_lr="original"):
    return torch.optim.Muon(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                            adjust_lr_fn=adjust_lr)


def assert_matches_torch_muon(shape, setting, row_blocks=1, steps=4):
    """Run BatchedMuon on [E, rows, cols] and torch.optim.Muon on each member's row blocks, same grads.

    torch.optim.Muon runs Newton-Schulz in bf16, so BatchedMuon gets ns_dtype=bf16. The same fused
    steps on the same bf16 inputs agree to float32 round-off; the tolerance, 1e-3 of the adjusted lr
    per entry (an entry of an orthogonalised update is ~0.1-0.3 of it), is far below one bf16 ulp of
    the update, so a different momentum form or normalisation would fail it.
    """
    E, rows, cols = shape
    r = rows // row_blocks
    w0 = torch.randn(shape)
    ours = torch.nn.Parameter(w0.clone())
    if row_blocks > 1:
        ours.row_blocks = row_blocks
    slices = [[torch.nn.Parameter(w0[e, j * r:(j + 1) * r].clone()) for j in range(row_blocks)] for e in range(E)]
    opt = BatchedMuon([ours], ns_dtype=torch.bfloat16, **setting)
    refs = [torch_muon(member, **setting) for member in slices]
    tol = 1e-3 * setting["lr"] * lr_scale(r, cols, setting.get("adjust_lr", "original"))
    for step in range(steps):
        grad = torch.randn(shape) * (10.0 ** (step - 2))       # gradient scales from 0.01 to 10
        ours.grad = grad.clone()
        for e in range(E):
            for j, p in enumerate(slices[e]):
                p.grad = grad[e, j * r:(j + 1) * r].clone()
        opt.step()
        for ref in refs:
            ref.step()
        expected = torch.stack([torch.cat([p.detach() for p in member]) for member in slices])
        torch.testing.assert_close(ours.detach(), expected, rtol=0, atol=tol,
                                   msg=lambda m: f"step {step + 1}: {m}")
    assert not torch.equal(ours.detach(), w0)                  # it did move


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_batched_muon_equals_torch_muon_per_member(shape, setting):
    assert_matches_torch_muon(shape, setting)


@pytest.mark.parametrize("shape", [(2, 3 * 8, 16), (2, 3 * 16, 8)], ids=["blocks wide", "blocks tall"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_batched_muon_row_blocks_equal_separate_torch_muon_layers(shape, nesterov):
    assert_matches_torch_muon(shape, dict(lr=0.02, weight_decay=0.05, momentum=0.95, nesterov=nesterov),
                              row_blocks=3, steps=3)


def test_batched_muon_members_are_independent():
    """A member's update does not depend on the other members' gradients (each is normalised alone)."""
    w0 = torch.randn(3, 8, 12)
    g = torch.randn(3, 8, 12)
    results = []
    for other_scale in (1.0, 1e4):
        p = torch.nn.Parameter(w0.clone())
        opt = BatchedMuon([p], lr=0.02, ns_dtype=torch.float32)
        p.grad = g.clone()
        p.grad[1:] *= other_scale
        opt.step()
        results.append(p.detach()[0].clone())
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


def test_batched_muon_skips_params_without_grad_and_rejects_2d():
    p, q = torch.nn.Parameter(torch.randn(2, 4, 4)), torch.nn.Parameter(torch.randn(2, 4, 4))
    opt = BatchedMuon([p, q], lr=0.1)
    before = q.detach().clone()
    p.grad = torch.randn_like(p)
    opt.step()
    assert torch.equal(q.detach(), before) and q not in opt.state
    with pytest.raises(ValueError, match="members, rows, cols"):
        BatchedMuon([torch.nn.Parameter(torch.randn(4, 4))])


def test_lr_scale_matches_torch_rule():
    assert lr_scale(64, 16) == 2.0 and lr_scale(16, 64) == 1.0
    assert lr_scale(16, 64, "match_rms_adamw") == pytest.approx(0.2 * 8)
    with pytest.raises(ValueError):
        lr_scale(4, 4, "bogus")


def test_ns_dtype_choice():
    assert ns_dtype("auto", torch.device("cpu")) == torch.float32
    assert ns_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert ns_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert ns_dtype("fp32", torch.device("cuda")) == torch.float32


# --- Newton-Schulz ---------------------------------------------------------------------------------

def with_singular_values(m, n, s):
    u, _ = torch.linalg.qr(torch.randn(m, m))
    v, _ = torch.linalg.qr(torch.randn(n, n))
    k = min(m, n)
    return u[:, :k] @ torch.diag(s) @ v[:, :k].T


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("m,n", [(32, 32), (16, 48), (48, 16), (64, 64)])
def test_newton_schulz_singular_values(m, n, dtype):
    """Five quintic steps do not give UV^T but U S' V^T with S' spread around 1 (Keller Jordan's
    Uniform(0.5, 1.5) remark). Measured: for singular values within a factor 100 of the largest,
    S' lies in about [0.68, 1.20]; we assert (0.6, 1.25). Singular vectors are kept."""
    k = min(m, n)
    s = torch.logspace(0, -2, k) * 7.0
    g = torch.stack([with_singular_values(m, n, s), with_singular_values(m, n, s[torch.randperm(k)] * 1e-3)])
    out = newton_schulz(g, dtype=dtype)
    assert out.dtype == dtype and out.shape == g.shape
    for member in range(2):
        sv = torch.linalg.svdvals(out[member].float())
        assert sv.min() > 0.6 and sv.max() < 1.25, (sv.min(), sv.max())
        # Same singular vectors: U^T O V is (nearly) diagonal.
        u, _, vh = torch.linalg.svd(g[member], full_matrices=False)
        core = u.T @ out[member].float() @ vh.T
        off = core - torch.diag(torch.diagonal(core))
        assert off.abs().max() < (0.05 if dtype == torch.bfloat16 else 1e-3)


def test_newton_schulz_never_exceeds_bound_on_gaussian_matrices():
    """Square Gaussian matrices have tiny singular values that 5 steps cannot lift; still none
    grows past ~1.2, and the update is never the zero matrix."""
    g = torch.randn(8, 32, 32)
    sv = torch.linalg.svdvals(newton_schulz(g, dtype=torch.float32))
    assert sv.max() < 1.25
    assert (sv.median(-1).values > 0.6).all()


def test_newton_schulz_is_per_member_scale_invariant():
    g = torch.randn(3, 12, 20)
    scaled = g * torch.tensor([1e-4, 1.0, 1e4])[:, None, None]
    torch.testing.assert_close(newton_schulz(g, dtype=torch.float32), newton_schulz(scaled, dtype=torch.float32),
                               rtol=1e-4, atol=1e-5)
    # Leading axes are kept: [E, k, m, n] is orthogonalised per [m, n] matrix.
    g4 = torch.randn(2, 3, 8, 6)
    torch.testing.assert_close(newton_schulz(g4, dtype=torch.float32)[1, 2],
                               newton_schulz(g4[1, 2][None], dtype=torch.float32)[0])
    assert torch.equal(newton_schulz(torch.zeros(1, 4, 4), dtype=torch.float32), torch.zeros(1, 4, 4))


# --- which parameter goes to which optimizer -------------------------------------------------------

def names_of(model, params):
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_build_optimizers_muon_split(compose_cfg):
    cfg = compose_cfg("optimizer=muon", "model.n_layers=2", "task=modadd", "task.p=13", "seeds=[0,1]")
    model = build_model(cfg, list(cfg.seeds), torch.device("cpu"))
    muon, adamw = build_optimizers(model, cfg.optimizer)
    assert isinstance(muon, BatchedMuon) and isinstance(adamw, BatchedAdamW)
    muon_params = [p for g in muon.param_groups for p in g["params"]]
    adamw_params = [p for g in adamw.param_groups for p in g["params"]]
    hidden = model.hidden_matrices()
    assert {id(p) for p in muon_params} == {id(p) for p in hidden} and len(muon_params) == len(hidden) == 8
    all_names = {n for n, _ in model.named_parameters()}
    hidden_names = names_of(model, hidden)
    assert hidden_names == {f"layers.{i}.{k}" for i in range(2) for k in ("wqkv", "wo", "w13", "w2")}
    assert names_of(model, adamw_params) == all_names - hidden_names
    assert names_of(model, adamw_params) == {"embed", "head", "final_norm"} | {
        f"layers.{i}.{k}" for i in range(2) for k in ("attn_norm", "mlp_norm")}
    # Every parameter exactly once.
    assert len(muon_params) + len(adamw_params) == len(list(model.parameters()))
    o = cfg.optimizer
    assert muon.defaults["lr"] == o.lr and muon.defaults["weight_decay"] == o.weight_decay
    assert muon.defaults["momentum"] == o.momentum and muon.defaults["nesterov"] == o.nesterov
    assert muon.defaults["ns_dtype"] == torch.float32                      # auto on the CPU
    assert adamw.defaults["lr"] == o.adamw_lr and adamw.defaults["weight_decay"] == o.adamw_weight_decay
    assert adamw.defaults["betas"] == tuple(o.betas)


def test_build_optimizers_adamw_takes_everything(compose_cfg):
    cfg = compose_cfg("optimizer=adamw", "task=parity")
    model = build_model(cfg, [0], torch.device("cpu"))
    (adamw,) = build_optimizers(model, cfg.optimizer)
    assert isinstance(adamw, BatchedAdamW)
    params = [p for g in adamw.param_groups for p in g["params"]]
    assert {id(p) for p in params} == {id(p) for p in model.parameters()}
    assert adamw.defaults["lr"] == cfg.optimizer.lr
    assert adamw.defaults["weight_decay"] == cfg.optimizer.weight_decay


@pytest.mark.parametrize("per_member", [False, True], ids=["shared lr/wd", "lr/wd per member"])
def test_batched_adamw_equals_torch_adamw_per_member(per_member):
    """Member e's slice gets torch.optim.AdamW's update with member e's own lr and weight decay."""
    E = 3
    shapes = [(E, 7, 5), (E, 6)]
    lrs = [1e-2, 3e-3, 3e-2] if per_member else [1e-2] * E
    wds = [1.0, 0.1, 0.0] if per_member else [1.0] * E
    w0 = [torch.randn(s) for s in shapes]
    stacked = [torch.nn.Parameter(w.clone()) for w in w0]
    members = [[torch.nn.Parameter(w[e].clone()) for w in w0] for e in range(E)]
    kw = dict(betas=(0.9, 0.98), eps=1e-8)
    opt = BatchedAdamW(stacked, lr=torch.tensor(lrs), weight_decay=torch.tensor(wds), **kw) if per_member \
        else BatchedAdamW(stacked, lr=lrs[0], weight_decay=wds[0], **kw)
    refs = [torch.optim.AdamW(m, foreach=False, lr=lrs[e], weight_decay=wds[e], **kw) for e, m in enumerate(members)]
    for step in range(5):
        grads = [torch.randn(s) * (1 + step) for s in shapes]
        for p, g in zip(stacked, grads):
            p.grad = g.clone()
        for e in range(E):
            for p, g in zip(members[e], grads):
                p.grad = g[e].clone()
        opt.step()
        for r in refs:
            r.step()
    for i in range(len(shapes)):
        torch.testing.assert_close(stacked[i].detach(), torch.stack([m[i].detach() for m in members]),
                                   rtol=1e-6, atol=1e-7)
        assert not torch.allclose(stacked[i].detach(), w0[i])


def test_batched_muon_with_per_member_lr_and_decay_equals_torch_muon_per_member():
    """A grid on the member axis: each member's slice gets torch.optim.Muon's update with its own lr/wd."""
    E, rows, cols = 3, 12, 20
    lrs, wds = [0.02, 0.005, 0.05], [0.05, 0.0, 0.5]
    w0 = torch.randn(E, rows, cols)
    ours = torch.nn.Parameter(w0.clone())
    slices = [torch.nn.Parameter(w0[e].clone()) for e in range(E)]
    opt = BatchedMuon([ours], lr=torch.tensor(lrs), weight_decay=torch.tensor(wds), ns_dtype=torch.bfloat16)
    refs = [torch_muon([slices[e]], lr=lrs[e], weight_decay=wds[e], momentum=0.95, nesterov=True) for e in range(E)]
    for step in range(4):
        grad = torch.randn(E, rows, cols)
        ours.grad = grad.clone()
        for e in range(E):
            slices[e].grad = grad[e].clone()
        opt.step()
        for r in refs:
            r.step()
        for e in range(E):
            tol = 1e-3 * lrs[e] * lr_scale(rows, cols)
            torch.testing.assert_close(ours.detach()[e], slices[e].detach(), rtol=0, atol=tol)


def test_batched_muon_with_many_params_of_mixed_shapes_equals_torch_muon():
    """One optimizer over several weights, as the model has them: shapes that orient to the same
    wide block (8x16 and 16x8, fused 3x(8x16)) share a Newton-Schulz call; each slice must still
    get exactly torch.optim.Muon's update."""
    E = 2
    specs = [((E, 8, 16), 1), ((E, 16, 8), 1), ((E, 24, 16), 3), ((E, 12, 12), 1), ((E, 2 * 20, 8), 2)]
    setting = dict(lr=0.03, weight_decay=0.1, momentum=0.9, nesterov=True)
    ours, refs = [], []
    for shape, k in specs:
        p = torch.nn.Parameter(torch.randn(shape))
        if k > 1:
            p.row_blocks = k
        r = shape[1] // k
        ours.append(p)
        refs.append([[torch.nn.Parameter(p.detach()[e, j * r:(j + 1) * r].clone()) for j in range(k)]
                     for e in range(E)])
    opt = BatchedMuon(ours, ns_dtype=torch.bfloat16, **setting)
    ref_opt = torch_muon([q for member in sum(refs, []) for q in member], **setting)
    for step in range(3):
        for p, (shape, k), ref in zip(ours, specs, refs):
            p.grad = torch.randn(shape)
            r = shape[1] // k
            for e in range(E):
                for j in range(k):
                    ref[e][j].grad = p.grad[e, j * r:(j + 1) * r].clone()
        ours[3].grad = None                           # a weight without a gradient this step
        for member in refs[3]:
            for q in member:
                q.grad = None
        opt.step()
        ref_opt.step()
        for p, (shape, k), ref in zip(ours, specs, refs):
            r = shape[1] // k
            expected = torch.stack([torch.cat([q.detach() for q in member]) for member in ref])
            tol = 1e-3 * setting["lr"] * lr_scale(r, shape[2])
            torch.testing.assert_close(p.detach(), expected, rtol=0, atol=tol)
