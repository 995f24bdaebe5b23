"""Fourier probes and update spectra against answers known by construction (never recomputed by the code
under test): hand-built embeddings and logits with known frequencies, random weights, plain loops."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grokmuon import fourier, probes
from grokmuon.tasks import make_task

P = 97


def embedding_on(freqs_x: dict[int, int], p: int = P, D: int = 8, c: float = 2.0) -> torch.Tensor:
    """[p, D]: column d holds c·cos(2πkx/p) (d even) or c·sin(2πkx/p) (d odd) for the frequency k
    given for d; other columns are 0."""
    W = torch.zeros(p, D, dtype=torch.float64)
    x = torch.arange(p, dtype=torch.float64)
    for d, k in freqs_x.items():
        W[:, d] = c * (torch.cos if d % 2 == 0 else torch.sin)(2 * math.pi * k * x / p)
    return W


def plain_gini(x) -> float:
    x = [float(v) for v in x]
    m = len(x)
    return sum(abs(a - b) for a in x for b in x) / (2 * m * m * (sum(x) / m))


def test_embedding_on_two_frequencies_gives_them_and_the_closed_form_gini():
    W = embedding_on({0: 3, 1: 17})                 # cos(3·), sin(17·) in two columns, amplitude c = 2
    norms = fourier.frequency_norms(W)
    assert norms.shape == (48,)
    # ‖c·cos(2π3x/97)‖ = c·sqrt(97/2) = ‖c·sin(2π17x/97)‖ over x = 0..96: that is n_3 = n_17.
    expected = 2.0 * math.sqrt(97 / 2)
    assert norms[2].item() == pytest.approx(expected, rel=1e-9)
    assert norms[16].item() == pytest.approx(expected, rel=1e-9)
    others = torch.cat([norms[:2], norms[3:16], norms[17:]])
    assert others.abs().max().item() < 1e-9
    assert sorted(fourier.key_freqs(norms)[:2].tolist()) == [3, 17]
    # Gini, n = c on 2 of m = 48 and 0 on 46: Σ_i Σ_j |n_i - n_j| counts the ordered pairs (one of the
    # two, one of the 46) both ways: 2·2·46 = 184 pairs of difference c; mean(n) = 2c/48, so
    # Gini = 184c / (2·48²·2c/48) = 184 / 192 = 23/24 = 1 - 2/48.
    assert fourier.fourier_gini(W).item() == pytest.approx(23 / 24, rel=1e-9)


def test_batched_frequency_norms_equal_each_member_alone():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, P, 16, generator=g)
    batched = fourier.frequency_norms(W)
    for e in range(3):
        assert torch.allclose(batched[e], fourier.frequency_norms(W[e]), rtol=1e-6)


def test_gini_equals_a_plain_double_loop():
    rng = np.random.default_rng(1)
    for m in (2, 5, 48):
        x = rng.exponential(size=(4, m))
        got = fourier.gini(torch.tensor(x))
        for e in range(4):
            assert got[e].item() == pytest.approx(plain_gini(x[e]), rel=1e-12)
    assert fourier.gini(torch.tensor([0.0, 0.0, 5.0])).item() == pytest.approx(2 / 3)   # (m-1)/m
    assert fourier.gini(torch.ones(48)).item() == 0.0


def test_random_gaussian_embedding_gives_the_random_gini():
    # An i.i.d. N(0, 1) embedding [p, D]: each unit basis vector's coefficients are again i.i.d. N(0, 1),
    # so n_k is chi-distributed with 2D degrees of freedom. For D = 1 that is a Rayleigh law, whose Gini
    # is 1 - 1/√2 = 0.2929; with the m² denominator (the m zero diagonal terms) the expected value is
    # about (m - 1)/m · 0.2929 = 0.2868 for m = 48. For D = 64, n_k ≈ √128 with sd ≈ 1/√2: Gini ≈
    # sd/(√π·mean) ≈ 0.707/(1.772·11.3) ≈ 0.035, small.
    g = torch.Generator().manual_seed(2)
    W1 = torch.randn(400, P, 1, generator=g, dtype=torch.float64)
    gini1 = fourier.fourier_gini(W1)
    assert gini1.mean().item() == pytest.approx(0.2868, abs=0.01)
    W64 = torch.randn(20, P, 64, generator=g, dtype=torch.float64)
    gini64 = fourier.fourier_gini(W64)
    assert 0.015 < gini64.min().item() and gini64.max().item() < 0.07
    norms = fourier.frequency_norms(W64[0]).numpy()
    assert gini64[0].item() == pytest.approx(plain_gini(norms), rel=1e-9)


def test_five_generates_the_multiplicative_group_of_97_and_the_log_map_turns_products_into_sums():
    assert len({pow(5, i, 97) for i in range(96)}) == 96           # 5^0..5^95 mod 97 are 1..96
    assert fourier.primitive_root(97) == 5
    tokens = fourier.number_tokens("modmul", 97).tolist()
    assert tokens == [pow(5, i, 97) for i in range(96)]
    log = {x: i for i, x in enumerate(tokens)}
    for a in range(1, 97):
        for b in range(1, 97):
            assert log[a * b % 97] == (log[a] + log[b]) % 96


def test_grid_rows_point_at_the_rows_of_each_pair():
    for task, op in (("modadd", lambda a, b: (a + b) % 13), ("modsub", lambda a, b: (a - b) % 13),
                     ("modmul", lambda a, b: a * b % 13), ("moddiv", lambda a, b: a * pow(b, 11, 13) % 13)):
        x, y = make_task(task, 13)
        tokens = fourier.number_tokens(task, 13).tolist()
        idx = fourier.grid_rows(task, 13)
        for i, a in enumerate(tokens):
            for j, b in enumerate(tokens):
                row = idx[i, j].item()
                assert x[row, 0].item() == a and x[row, 2].item() == b and y[row].item() == op(a, b)


def test_multiplicative_embedding_in_log_coordinates_and_the_nyquist_frequency():
    # W[5^i mod 97] = (cos(2π·3i/96), sin(2π·17i/96), (-1)^i); W[0] (outside the group) is huge and
    # must not count.
    W = torch.zeros(1, P + 2, 3, dtype=torch.float64)
    W[0, 0] = 1e6
    for i in range(96):
        W[0, pow(5, i, 97)] = torch.tensor([math.cos(2 * math.pi * 3 * i / 96),
                                            math.sin(2 * math.pi * 17 * i / 96), (-1.0) ** i],
                                           dtype=torch.float64)
    out = fourier.embedding_probes(W, "modmul", P)
    # ‖cos(2π3i/96)‖ = √48 = ‖sin(2π17i/96)‖; the Nyquist cos (-1)^i/√96 gives (-1)^i·(-1)^i summed: √96.
    assert out["key_freqs"][0, 0].item() == 48 and sorted(out["key_freqs"][0, 1:3].tolist()) == [3, 17]
    norms = fourier.frequency_norms(W[0, fourier.number_tokens("modmul", P)])
    assert norms[47].item() == pytest.approx(math.sqrt(96)) and norms[2].item() == pytest.approx(math.sqrt(48))
    assert torch.cat([norms[:2], norms[3:16], norms[17:47]]).abs().max().item() < 1e-9


def test_probes_apply_only_to_the_group_tasks():
    assert [t for t in ("modadd", "modsub", "modmul", "moddiv", "modexp", "gcd", "parity")
            if fourier.applies(t)] == ["modadd", "modsub", "modmul", "moddiv"]
    assert fourier.embedding_probes(torch.zeros(1, 3, 4), "parity", P) == {}
    assert fourier.logit_probes(torch.zeros(1, 5, 3), torch.zeros(5), torch.ones(1, 5), None, "gcd", P) == {}


def wave_logits(n: int, k: int, s: int, A: float = 2000.0, extra: int = 2) -> torch.Tensor:
    """[1, n, n, n + extra]: logit of class c at (a, b) is A·cos(2πk(a + s·b - c)/n); the extra classes
    are a constant -10 (like the operator and "=" tokens)."""
    a = torch.arange(n, dtype=torch.float64)
    z = A * torch.cos(2 * math.pi * k * (a[:, None, None] + s * a[None, :, None] - a[None, None, :]) / n)
    return torch.cat([z, torch.full((n, n, extra), -10.0, dtype=torch.float64)], -1)[None]


def labels_of(n: int, s: int) -> torch.Tensor:
    a = torch.arange(n)
    return (a[:, None] + s * a[None, :]) % n


def plain_ce(z: torch.Tensor, y: torch.Tensor, rows: torch.Tensor) -> float:
    return F.cross_entropy(z[rows].double(), y[rows]).item()


@pytest.mark.parametrize("s", [1, -1])
def test_logits_of_a_key_frequency_keep_their_loss_restricted_and_lose_it_excluded(s):
    n, k = P, 5
    z, y = wave_logits(n, k, s), labels_of(n, s)
    rows = torch.rand(n, n, generator=torch.Generator().manual_seed(3)) < 0.5
    key = torch.tensor([[k, 11, 30]])
    full = plain_ce(z[0], y, rows)
    # The wave peaks at the answer; the runner-up classes (5d = ±1 mod 97) trail by A(1 - cos(2π/97)) =
    # 4.2: full ≈ 2e^-4.2 ≈ 0.03. (The loss is taken in float32, as training does: logits of size 2000
    # carry ~1e-4 of rounding, hence rel=1e-3.)
    assert 0.02 < full < 0.04
    assert fourier.restricted_loss(z, y, rows, key, s).item() == pytest.approx(full, rel=1e-3)
    # Excluded: the number classes' logits become exactly 0 (the wave has zero mean over the grid), the
    # two extra classes stay -10: loss = log(97 + 2e^-10) on every row.
    chance = math.log(n + 2 * math.exp(-10))
    assert fourier.excluded_loss(z, y, rows, key, s).item() == pytest.approx(chance, rel=1e-6)
    # The other sign's components are orthogonal: for it the same logits have no key-frequency part.
    assert fourier.restricted_loss(z, y, rows, key, -s).item() == pytest.approx(chance, rel=1e-6)
    assert fourier.excluded_loss(z, y, rows, key, -s).item() == pytest.approx(full, rel=1e-3)


def test_logits_without_the_key_frequencies_are_the_reverse():
    z, y, rows = wave_logits(P, 7, 1), labels_of(P, 1), torch.ones(P, P, dtype=torch.bool)
    key = torch.tensor([[3, 17]])
    full = plain_ce(z[0], y, rows)
    assert fourier.restricted_loss(z, y, rows, key, 1).item() == pytest.approx(
        math.log(P + 2 * math.exp(-10)), rel=1e-6)
    assert fourier.excluded_loss(z, y, rows, key, 1).item() == pytest.approx(full, rel=1e-3)


def test_projections_are_idempotent_and_complementary():
    g = torch.Generator().manual_seed(4)
    n = 13
    z = torch.randn(2, n, n, 15, generator=g, dtype=torch.float64)
    key = torch.tensor([[1, 4], [6, 2]])
    for s in (1, -1):
        comp = fourier.key_components(z, key, s)
        assert torch.allclose(fourier.key_components(comp, key, s), comp, atol=1e-12)       # idempotent
        excl = fourier.excluded_logits(z, key, s)
        assert fourier.key_components(excl, key, s).abs().max().item() < 1e-12
        centred = z - z.mean((1, 2), keepdim=True)
        restricted = fourier.restricted_logits(z, key, s)
        assert torch.allclose((restricted - z.mean((1, 2), keepdim=True)) + (excl - z.mean((1, 2), keepdim=True)),
                              centred, atol=1e-12)
        # kept and removed parts are orthogonal: their energies add up to the centred logits' (Pythagoras)
        assert torch.allclose(comp.pow(2).sum() + (excl - z.mean((1, 2), keepdim=True)).pow(2).sum(),
                              centred.pow(2).sum())


@pytest.mark.parametrize("task,s", [("modmul", 1), ("moddiv", -1), ("modsub", -1)])
def test_logit_probes_read_the_task_rows_in_group_coordinates(task, s):
    # Logits on the task's own rows: A·cos(2πk(L(a) + s·L(b) - L(c))/n) with L the group coordinate
    # (log base 5 for modmul/moddiv, x itself for modsub), written with Python's pow, not the module.
    x, y = make_task(task, P)
    n = 96 if task in ("modmul", "moddiv") else 97
    L = {pow(5, i, 97): i for i in range(96)} if n == 96 else {v: v for v in range(97)}
    k, A = 4, 20.0
    log = torch.full((P + 2,), -1)
    log[torch.tensor(list(L))] = torch.tensor(list(L.values()))
    la, lb, cls = log[x[:, 0]], log[x[:, 2]], torch.tensor(list(L))
    wave = A * torch.cos(2 * math.pi * k * ((la + s * lb)[:, None] - log[cls][None, :]) / n)
    z = torch.zeros(1, len(y), P + 2)
    z[0][:, cls] = torch.where(((la >= 0) & (lb >= 0))[:, None], wave, 0.0)
    is_train = torch.rand(1, len(y), generator=torch.Generator().manual_seed(5)) < 0.5
    in_group = torch.tensor([a in L and b in L for a, b in x[:, [0, 2]].tolist()])
    full = F.cross_entropy(z[0][is_train[0] & in_group], y[is_train[0] & in_group]).item()
    got = fourier.logit_probes(z, y, is_train, torch.tensor([[k, 1]]), task, P)
    assert got["restricted_loss"].item() == pytest.approx(full, rel=1e-4, abs=1e-6)
    assert got["excluded_loss"].item() > 3.0                    # about log 96: the structure is gone


def test_stable_rank_of_known_matrices_batched_equals_per_member():
    g = torch.Generator().manual_seed(6)
    u, v = torch.randn(7, 1, generator=g), torch.randn(1, 5, generator=g)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    assert probes.spectra(u @ v)[1].item() == pytest.approx(1.0, rel=1e-5)
    assert probes.spectra(q)[1].item() == pytest.approx(6.0, rel=1e-5)
    b = torch.randn(3, 2, 6, 4, generator=g)
    s2, sr = probes.spectra(b)
    for e in range(3):
        for i in range(2):
            sv = torch.linalg.svdvals(b[e, i].double())
            assert s2[e, i].item() == pytest.approx(sv[0].item(), rel=1e-5)
            assert sr[e, i].item() == pytest.approx((sv.pow(2).sum() / sv[0] ** 2).item(), rel=1e-5)
    nan = b.clone()
    nan[1, 0, 0, 0] = float("nan")
    assert probes.spectra(nan)[1][1, 0].isnan() and probes.spectra(nan)[1][1, 1].isfinite()


def test_update_spectra_split_fused_blocks_and_average_them():
    g = torch.Generator().manual_seed(7)
    D = 4
    before = torch.randn(2, 3 * D, D, generator=g)
    # Member 0's update: q block rank one (1), k block orthogonal (D), v block two equal singular
    # values (2): mean (1 + 4 + 2)/3. Member 1's: every block orthogonal: D.
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=g))
    rank1 = torch.randn(D, 1, generator=g) @ torch.randn(1, D, generator=g)
    two = torch.diag(torch.tensor([3.0, 3.0, 0.0, 0.0]))
    delta = torch.stack([torch.cat([rank1, q, two]), torch.cat([q, 2 * q, q])])
    grads = torch.stack([torch.cat([q, q, q]), torch.cat([rank1, rank1, rank1])])
    w2_before = torch.randn(2, D, 2 * D, generator=g)
    w2_delta = torch.stack([torch.cat([q, q], 1), torch.cat([q, q], 1)])   # [D, 2D], rows orthonormal·√2: D
    out = probes.update_spectra([before, w2_before], [before + delta, w2_before + w2_delta],
                                [grads, torch.cat([q, q], 1).expand(2, D, 2 * D)], [3, 1])
    assert out["update_stable_rank"].tolist() == pytest.approx([(1 + 4 + 2 + 4) / 4, 4.0], rel=1e-4)
    assert out["grad_stable_rank"].tolist() == pytest.approx([(4 + 4 + 4 + 4) / 4, (1 + 1 + 1 + 4) / 4], rel=1e-4)
