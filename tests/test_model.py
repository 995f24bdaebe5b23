"""RoPE, the last-layer shortcut against a plain reference forward, and ensemble member == solo run."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from grokmuon.model import EnsembleTransformer, ModelShape, apply_rope, rope_tables
from grokmuon.train import build_model, member_generator, train

CPU = torch.device("cpu")

# --- RoPE ------------------------------------------------------------------------------------------


def test_rope_keeps_norms_and_moves_vectors():
    cos, sin = rope_tables(12, 16, 10000.0)
    x = torch.randn(5, 12, 16)
    y = apply_rope(x, cos, sin)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(y[:, 0], x[:, 0])                      # position 0 is not turned
    for pos in range(1, 12):
        assert (y[:, pos] - x[:, pos]).norm(dim=-1).min() > 1e-3      # every later position is


def test_rope_tables_match_formula():
    T, d, base = 6, 8, 100.0
    cos, sin = rope_tables(T, d, base)
    for pos in range(T):
        for i in range(d // 2):
            angle = pos * base ** (-2 * i / d)
            for j in (i, i + d // 2):                                 # pair (i, i + d/2), rotate-half
                assert cos[pos, j].item() == pytest.approx(math.cos(angle), abs=1e-6)
                assert sin[pos, j].item() == pytest.approx(math.sin(angle), abs=1e-6)


def test_rope_dot_products_depend_only_on_relative_offset():
    T, d = 16, 8
    cos, sin = rope_tables(T, d, 10000.0)
    q, k = torch.randn(d), torch.randn(d)
    qr = apply_rope(q.expand(T, d), cos, sin)                         # q at every position
    kr = apply_rope(k.expand(T, d), cos, sin)
    dots = qr @ kr.T                                                  # dots[m, n] = <R_m q, R_n k>
    for offset in range(-5, 6):
        diag = torch.diagonal(dots, offset)
        torch.testing.assert_close(diag, diag[:1].expand_as(diag), rtol=1e-5, atol=1e-5)
    assert (torch.diagonal(dots, 0)[0] - torch.diagonal(dots, 3)[0]).abs() > 1e-3


def tiny_model(vocab=15, seq_len=4, n_layers=1, seeds=(0,), dropout=0.0, **kw) -> EnsembleTransformer:
    shape = ModelShape(vocab=vocab, seq_len=seq_len, n_layers=n_layers, d_model=32, n_heads=2, d_mlp=48,
                       dropout=dropout, **kw)
    return EnsembleTransformer(shape, [member_generator(s, 1) for s in seeds]).eval()


def test_position_matters_only_through_rope():
    """With one layer, the only query is "=" and it sees every key: without RoPE, "a op b =" and
    "b op a =" give the same logits; with RoPE they differ."""
    model = tiny_model(n_layers=1)
    x = torch.tensor([[3, 13, 5, 14], [5, 13, 3, 14], [1, 13, 9, 14]])
    swapped = x[:, [2, 1, 0, 3]]
    with torch.no_grad():
        with_rope, with_rope_swapped = model(x), model(swapped)
        model.rope_cos.fill_(1.0)
        model.rope_sin.fill_(0.0)                                     # identity rotation
        no_rope, no_rope_swapped = model(x), model(swapped)
    torch.testing.assert_close(no_rope, no_rope_swapped)
    assert (with_rope - with_rope_swapped).abs().max() > 1e-3
    assert (with_rope - no_rope).abs().max() > 1e-3


# --- the last-layer shortcut against a plain reference ---------------------------------------------


def rms_norm(x, gain, eps=1e-5):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * gain


def rotate(x, pos_angles):
    """Rotate-half RoPE by explicit angles: x [B, H, T, dh], angles [T, dh/2]."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = pos_angles.cos(), pos_angles.sin()
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def reference_forward(model: EnsembleTransformer, member: int, tokens: torch.Tensor) -> torch.Tensor:
    """Member `member`'s logits, plainly: full causal attention at every position of every layer,
    then the last position. Uses only that member's weight slices; no code from model.py."""
    s = model.shape
    D, H, M = s.d_model, s.n_heads, s.d_mlp
    dh = D // H
    B, T = tokens.shape
    w = {n: p.detach()[member] for n, p in model.named_parameters()}
    inv_freq = s.rope_base ** (-torch.arange(0, dh, 2, dtype=torch.float64) / dh)
    angles = (torch.arange(T, dtype=torch.float64)[:, None] * inv_freq).float()      # [T, dh/2]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    x = w["embed"][tokens]                                                          # [B, T, D]
    for i in range(s.n_layers):
        L = lambda k: w[f"layers.{i}.{k}"]                                          # noqa: E731
        a = rms_norm(x, L("attn_norm"), s.norm_eps)
        wq, wk, wv = L("wqkv")[:D], L("wqkv")[D:2 * D], L("wqkv")[2 * D:]
        heads = lambda t: t.view(B, T, H, dh).transpose(1, 2)                      # noqa: E731
        q, k, v = heads(a @ wq.T), heads(a @ wk.T), heads(a @ wv.T)
        q, k = rotate(q, angles), rotate(k, angles)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
        scores = scores.masked_fill(~causal, float("-inf"))
        att = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + att @ L("wo").T
        m = rms_norm(x, L("mlp_norm"), s.norm_eps)
        w1, w3 = L("w13")[:M], L("w13")[M:]
        x = x + (F.silu(m @ w1.T) * (m @ w3.T)) @ L("w2").T
    x = rms_norm(x[:, -1], w["final_norm"], s.norm_eps)
    return x @ w["head"].T


@pytest.mark.parametrize("n_layers,seq_len,vocab", [(1, 4, 15), (2, 4, 15), (3, 11, 3)])
def test_ensemble_forward_matches_plain_reference(n_layers, seq_len, vocab):
    model = tiny_model(vocab=vocab, seq_len=seq_len, n_layers=n_layers, seeds=(4, 7, 9), dropout=0.1)
    with torch.no_grad():                       # perturb the gains so they are not all 1
        for n, p in model.named_parameters():
            if "norm" in n:
                p.mul_(1 + 0.3 * torch.randn_like(p))
    tokens = torch.randint(0, vocab, (3, 6, seq_len))                               # [E, B, T]
    with torch.no_grad():
        out = model(tokens)
        shared = model(tokens[1])                                                   # [B, T] for all
    assert out.shape == (3, 6, vocab)
    for e in range(3):
        torch.testing.assert_close(out[e], reference_forward(model, e, tokens[e]), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(shared[e], reference_forward(model, e, tokens[1]), rtol=1e-4, atol=1e-5)


def test_dropout_only_in_train_mode():
    model = tiny_model(n_layers=2, dropout=0.5)
    x = torch.randint(0, 15, (8, 4))
    with torch.no_grad():
        a, b = model(x), model(x)
        model.train()
        gens = [torch.Generator().manual_seed(1)]
        c = model(x, gens)
        d = model(x, [torch.Generator().manual_seed(1)])
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-4
    torch.testing.assert_close(c, d)                     # the same generator state, the same masks


def test_hidden_matrices_are_the_block_weights():
    model = tiny_model(n_layers=2, seeds=(0, 1))
    hidden = model.hidden_matrices()
    assert len(hidden) == 8 and all(p.dim() == 3 and p.shape[0] == 2 for p in hidden)
    assert [getattr(p, "row_blocks", 1) for p in hidden[:4]] == [3, 1, 2, 1]


# --- ensemble member e == solo run with its seed ---------------------------------------------------


def test_member_weights_and_logits_equal_solo_model(compose_cfg):
    cfg = compose_cfg("task=modadd", "task.p=13", "model.n_layers=2")
    solo = build_model(cfg, [5], CPU).eval()
    ens = build_model(cfg, [11, 5, 2], CPU).eval()
    for (n, p_solo), (_, p_ens) in zip(solo.named_parameters(), ens.named_parameters()):
        assert torch.equal(p_ens[1], p_solo[0]), n
    x = torch.randint(0, 13, (20, 4))
    x[:, 1], x[:, 3] = 13, 14
    with torch.no_grad():
        torch.testing.assert_close(ens(x)[1], solo(x)[0], rtol=1e-5, atol=1e-6)
    # Different seeds are different models.
    assert not torch.equal(ens.embed[0], ens.embed[1])


def history(cfg):
    """Run train(cfg) and keep every epoch's per-member numbers."""
    rows = []
    results = train(cfg, on_epoch=lambda epoch, numbers, _: rows.append({k: list(v) for k, v in numbers.items()}))
    return results, rows


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
@pytest.mark.parametrize("task", ["parity", "modadd"])
def test_trained_member_equals_solo_run(compose_cfg, optimizer, task):
    """Member e of seeds [a, s, b] trains exactly like a solo run with seed s: same split, init,
    batch order and dropout masks. Batched matmuls may round differently, so float tolerance."""
    extra = ["task.p=13", "batch_size=32"] if task == "modadd" else ["batch_size=256"]
    over = [f"task={task}", f"optimizer={optimizer}", "max_epochs=3", "model.dropout=0.1", "model.n_layers=2",
            "patience=0", *extra]
    solo_results, solo_rows = history(compose_cfg(*over, "seeds=[5]"))
    ens_results, ens_rows = history(compose_cfg(*over, "seeds=[11,5,2]"))
    assert len(solo_rows) == len(ens_rows) == 3
    for solo_epoch, ens_epoch in zip(solo_rows, ens_rows):
        for key in ("train_loss", "val_loss"):
            assert ens_epoch[key][1] == pytest.approx(solo_epoch[key][0], rel=1e-5, abs=1e-6), key
        for key in ("train_acc", "val_acc"):
            assert ens_epoch[key][1] == pytest.approx(solo_epoch[key][0], abs=1.5 / 169), key
    solo, member = solo_results[0], ens_results[1]
    assert member.seed == solo.seed == 5
    assert (member.grokking_epoch, member.memorisation_epoch, member.status, member.epochs_run) == \
        (solo.grokking_epoch, solo.memorisation_epoch, solo.status, solo.epochs_run)
    # The losses moved: training happened, and the other members trained differently.
    assert solo_rows[-1]["train_loss"][0] != solo_rows[0]["train_loss"][0]
    assert ens_rows[-1]["train_loss"][0] != ens_rows[-1]["train_loss"][1]


@pytest.mark.parametrize("optimizer,lrs,wds", [("adamw", "[1e-3,3e-3]", "[0.3,1.0]"),
                                                ("muon", "[0.01,0.05]", "[0.0,0.15]")])
def test_grid_member_equals_solo_run_with_its_lr_and_weight_decay(compose_cfg, optimizer, lrs, wds):
    """A member (seed, lr, wd) of a grid ensemble trains exactly like a solo run with those values."""
    over = ["task=modadd", "task.p=13", "batch_size=32", f"optimizer={optimizer}", "max_epochs=3",
            "model.n_layers=2", "patience=0"]
    ens_results, ens_rows = history(compose_cfg(*over, "seeds=[4,5]", f"grid.lr={lrs}", f"grid.weight_decay={wds}"))
    lr, wd = float(lrs.strip("[]").split(",")[1]), float(wds.strip("[]").split(",")[0])
    # Member order: for each lr, each weight decay, each seed -> (lr[1], wd[0], seed 5) is member 5.
    e = 5
    assert (ens_results[e].seed, ens_results[e].lr, ens_results[e].weight_decay) == (5, lr, wd)
    solo_results, solo_rows = history(compose_cfg(*over, "seeds=[5]", f"optimizer.lr={lr}",
                                                  f"optimizer.weight_decay={wd}"))
    for solo_epoch, ens_epoch in zip(solo_rows, ens_rows):
        for key in ("train_loss", "val_loss"):
            assert ens_epoch[key][e] == pytest.approx(solo_epoch[key][0], rel=1e-5, abs=1e-6), key
    # Another setting of the same seed trained differently (the grid moved something).
    assert ens_rows[-1]["train_loss"][e] != pytest.approx(ens_rows[-1]["train_loss"][1], rel=1e-3)
