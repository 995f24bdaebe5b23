"""Output heads: each head's probabilities and loss against an independent reference."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from grokmuon.heads import HEADS, log_stablemax, probabilities, row_losses


def random_logits(rows=64, classes=11, scale=3.0, dtype=torch.float32):
    z = torch.randn(rows, classes, dtype=dtype) * scale
    z[:4] = 0.0                                   # ties at 0 (the stablemax branch point)
    z[4, :] = torch.linspace(-5, 5, classes)
    return z, torch.randint(0, classes, (rows,))


# --- softmax ---------------------------------------------------------------------------------------

def test_softmax_loss_is_cross_entropy():
    z, y = random_logits()
    torch.testing.assert_close(row_losses("softmax", z, y), F.cross_entropy(z, y, reduction="none"))
    torch.testing.assert_close(probabilities("softmax", z), torch.softmax(z, -1))


def test_losses_keep_leading_shape():
    z = torch.randn(3, 5, 7)
    y = torch.randint(0, 7, (3, 5))
    for head in HEADS:
        loss = row_losses(head, z, y)
        assert loss.shape == (3, 5)
        torch.testing.assert_close(loss[1], row_losses(head, z[1], y[1]))


# --- stablemax (Prieto et al. 2025) --------------------------------------------------------------

def s_reference(z):
    """s(z) = z + 1 for z >= 0, 1 / (1 - z) for z < 0 (Prieto et al.'s `s`).

    The unused branch sees 0 instead of z, so z = 1 cannot put 1/0 (and a NaN gradient) into it."""
    return torch.where(z >= 0, z + 1, 1 / (1 - torch.where(z < 0, z, torch.zeros_like(z))))


def log_stablemax_reference(z):
    """Prieto et al.'s log_stablemax, in float64: log(s(z) / sum s(z))."""
    z = z.double()
    s = s_reference(z)
    return torch.log(s / s.sum(-1, keepdim=True))


def test_s_is_continuous_and_positive():
    z = torch.tensor([-1e6, -2.0, -1e-6, 0.0, 1e-6, 2.0, 1e6], dtype=torch.float64)
    s = s_reference(z)
    assert (s > 0).all()
    torch.testing.assert_close(s, torch.tensor([1 / (1 + 1e6), 1 / 3, 1 / (1 + 1e-6), 1, 1 + 1e-6, 3, 1 + 1e6],
                                                dtype=torch.float64))


def test_stablemax_probabilities_match_formula():
    z, _ = random_logits()
    p = probabilities("stablemax", z)
    ref = s_reference(z.double())
    ref = ref / ref.sum(-1, keepdim=True)
    torch.testing.assert_close(p.double(), ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(p.sum(-1), torch.ones(len(z)))


@pytest.mark.parametrize("scale", [0.1, 3.0, 100.0, 1e4])
def test_stablemax_loss_matches_float64_reference(scale):
    z, y = random_logits(scale=scale)
    loss = row_losses("stablemax", z, y)
    assert loss.dtype == torch.float32
    ref = -log_stablemax_reference(z).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    # Also in float64 end to end: log_stablemax itself is exact to float64 round-off.
    torch.testing.assert_close(log_stablemax(z.double()), log_stablemax_reference(z), rtol=1e-12, atol=1e-12)


def test_stablemax_gradient_matches_reference_and_is_finite_for_large_logits():
    z, y = random_logits(scale=3.0, dtype=torch.float64)
    z1 = z.clone().requires_grad_(True)
    row_losses("stablemax", z1, y).sum().backward()
    z2 = z.clone().requires_grad_(True)
    (-log_stablemax_reference(z2).gather(1, y[:, None])).sum().backward()
    torch.testing.assert_close(z1.grad.double(), z2.grad, rtol=1e-5, atol=1e-6)

    big = torch.tensor([[1e30, -1e30, 0.0, 5.0], [-1e8, -1e8, -1e8, 1e8], [1e4, -1e4, 3.0, -3.0]])
    for target in range(4):
        zb = big.clone().requires_grad_(True)
        loss = row_losses("stablemax", zb, torch.full((3,), target))
        loss.sum().backward()
        assert torch.isfinite(loss).all() and torch.isfinite(zb.grad).all()


# --- sparsemax (Martins & Astudillo 2016) ---------------------------------------------------------

def sparsemax_reference(z):
    """Sparsemax by sort and cumsum: tau and the support of each row."""
    z = z.double()
    zs, _ = z.sort(-1, descending=True)
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    cums = zs.cumsum(-1)
    in_support = 1 + k * zs > cums
    k_z = in_support.sum(-1, keepdim=True)                       # support size
    tau = (cums.gather(-1, k_z - 1) - 1) / k_z
    return (z - tau).clamp(min=0), tau[..., 0], z > tau


def sparsemax_loss_reference(z, y):
    """L = -z_y + 1/2 sum_{j in S} (z_j^2 - tau^2) + 1/2 (Martins & Astudillo, eq. 17)."""
    z = z.double()
    _, tau, support = sparsemax_reference(z)
    quad = torch.where(support, z ** 2 - tau[:, None] ** 2, torch.zeros_like(z)).sum(-1)
    return -z.gather(1, y[:, None])[:, 0] + 0.5 * quad + 0.5


def test_sparsemax_probabilities_match_sort_reference_and_are_sparse():
    z, _ = random_logits(scale=2.0)
    p = probabilities("sparsemax", z)
    ref, _, _ = sparsemax_reference(z)
    torch.testing.assert_close(p.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(p.sum(-1), torch.ones(len(z)))
    assert (p >= 0).all()
    assert (p[4:] == 0).any(-1).all()                 # rows with spread logits have exact zeros


def test_sparsemax_loss_matches_closed_form():
    z, y = random_logits(scale=2.0)
    loss = row_losses("sparsemax", z, y)
    torch.testing.assert_close(loss.double(), sparsemax_loss_reference(z, y), rtol=1e-5, atol=1e-5)
    assert (loss >= -1e-6).all()
    # Zero loss exactly when the target alone has all the mass (margin >= 1).
    z0 = torch.tensor([[5.0, 0.0, 0.0]])
    assert row_losses("sparsemax", z0, torch.tensor([0])).abs().item() < 1e-6


def test_sparsemax_gradient_is_sparsemax_minus_onehot():
    z, y = random_logits(scale=2.0)
    z = z.requires_grad_(True)
    row_losses("sparsemax", z, y).sum().backward()
    expected = probabilities("sparsemax", z.detach()) - F.one_hot(y, z.shape[-1]).float()
    torch.testing.assert_close(z.grad, expected, rtol=1e-5, atol=1e-6)


# --- all heads -------------------------------------------------------------------------------------

@pytest.mark.parametrize("head", HEADS)
def test_argmax_of_probabilities_is_argmax_of_logits(head):
    z = torch.randn(256, 13) * 4                      # continuous: no ties
    p = probabilities(head, z)
    best = z.argmax(-1)
    # sparsemax may tie several classes at 0 but never the top one: the max prob is at argmax z.
    assert torch.equal(p.argmax(-1), best)
    assert (p.gather(1, best[:, None]) > 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(256))


@pytest.mark.parametrize("head", HEADS)
def test_loss_falls_when_the_target_logit_rises(head):
    z, y = random_logits(scale=1.0)
    up = z.clone()
    up[torch.arange(len(y)), y] += 2.0
    assert (row_losses(head, up, y) <= row_losses(head, z, y) + 1e-6).all()


def test_unknown_head_raises():
    z, y = random_logits()
    with pytest.raises(ValueError, match="nosuch"):
        probabilities("nosuch", z)
    with pytest.raises(ValueError, match="nosuch"):
        row_losses("nosuch", z, y)


@pytest.mark.parametrize("scale", [0.1, 1.0, 30.0])
def test_our_sparsemax_loss_is_entmaxs_bit_for_bit(scale):
    """heads.SparsemaxLoss (traceable by torch.compile) against entmax.sparsemax_loss: the same losses and
    gradients exactly, ties and large logits included, so every committed sparsemax run keeps its numbers."""
    from entmax import sparsemax_loss
    from grokmuon.heads import SparsemaxLoss
    g = torch.Generator().manual_seed(int(scale * 10))
    z = (torch.randn(300, 97, generator=g) * scale)
    z[:5, :3] = 2.0                                         # ties
    y = torch.randint(0, 97, (300,), generator=g)
    a, b = z.clone().requires_grad_(), z.clone().requires_grad_()
    w = torch.rand(300, generator=g)
    ours, theirs = SparsemaxLoss.apply(a, y), sparsemax_loss(b, y)
    (ours * w).sum().backward()
    (theirs * w).sum().backward()
    assert torch.equal(ours, theirs) and torch.equal(a.grad, b.grad)
