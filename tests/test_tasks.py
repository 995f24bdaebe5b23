"""Every task's rows and labels against brute-force Python; the seeded split; vocabulary sizes."""
from __future__ import annotations

import math

import pytest
import torch

from grokmuon.tasks import FIRST_B, TASKS, TRAIN_FRACTIONS, is_prime, make_task, split_indices, vocab_size

P = 97
BRUTE = {
    "modadd": lambda a, b, p: (a + b) % p,
    "modsub": lambda a, b, p: (a - b) % p,
    "modmul": lambda a, b, p: (a * b) % p,
    "moddiv": lambda a, b, p: a * pow(b, p - 2, p) % p,
    "modexp": lambda a, b, p: pow(a, b, p),
    "gcd": lambda a, b, p: math.gcd(a, b),
}


def test_every_task_has_a_brute_force_label_here():
    assert set(TASKS) == set(BRUTE) | {"parity"}
    assert set(TRAIN_FRACTIONS) == set(TASKS)


@pytest.mark.parametrize("name", sorted(BRUTE))
def test_binary_task_labels_match_brute_force(name):
    x, y = make_task(name, P)
    b_values = range(FIRST_B.get(name, 0), P)
    expected_rows = [(a, b) for a in range(P) for b in b_values]
    assert x.dtype == torch.long and y.dtype == torch.long
    assert x.shape == (len(expected_rows), 4) and y.shape == (len(expected_rows),)
    # Every row is "a op b =", op = p and "=" = p + 1, each (a, b) exactly once.
    assert (x[:, 1] == P).all() and (x[:, 3] == P + 1).all()
    assert sorted(zip(x[:, 0].tolist(), x[:, 2].tolist())) == expected_rows
    brute = [BRUTE[name](a, b, P) for a, b in zip(x[:, 0].tolist(), x[:, 2].tolist())]
    assert y.tolist() == brute
    assert 0 <= int(y.min()) and int(y.max()) < P


def test_edge_cases():
    x, y = make_task("modexp", P)
    assert y[(x[:, 0] == 0) & (x[:, 2] == 0)].tolist() == [1]          # 0^0 = 1, as pow(0, 0, p)
    assert y[(x[:, 0] == 0) & (x[:, 2] == 5)].tolist() == [0]
    x, y = make_task("gcd", P)
    assert y[(x[:, 0] == 0) & (x[:, 2] == 0)].tolist() == [0]          # gcd(0, 0) = 0, as math.gcd
    assert y[(x[:, 0] == 0) & (x[:, 2] == 12)].tolist() == [12]


def test_moddiv_leaves_out_b_zero_and_inverts_multiplication():
    x, y = make_task("moddiv", P)
    assert len(y) == 97 * 96
    assert not (x[:, 2] == 0).any()
    a, b = x[:, 0], x[:, 2]
    assert ((y * b) % P == a).all()                                    # (a / b) * b = a


@pytest.mark.parametrize("p", [7, 13])
@pytest.mark.parametrize("name", sorted(BRUTE))
def test_small_moduli(name, p):
    x, y = make_task(name, p)
    assert y.tolist() == [BRUTE[name](a, b, p) for a, b in zip(x[:, 0].tolist(), x[:, 2].tolist())]


def test_parity_rows():
    x, y = make_task("parity")
    assert x.shape == (1024, 11) and y.shape == (1024,)
    bits, eq = x[:, :10], x[:, 10]
    assert set(bits.unique().tolist()) <= {0, 1}
    assert (eq == 2).all()
    assert y.tolist() == [sum(row) % 2 for row in bits.tolist()]
    # All 1024 bit strings, each once.
    assert len({tuple(row) for row in bits.tolist()}) == 1024


def test_parity_other_lengths():
    x, y = make_task("parity", n_bits=4)
    assert x.shape == (16, 5)
    assert y.tolist() == [bin(n).count("1") % 2 for n in range(16)]   # most significant bit first


def test_unknown_task_raises():
    with pytest.raises(ValueError, match="nosuch"):
        make_task("nosuch")


def test_vocab_sizes_cover_every_token_and_label():
    assert vocab_size("parity") == 3
    for name in BRUTE:
        assert vocab_size(name, P) == P + 2
        assert vocab_size(name, 13) == 15
    for name in TASKS:
        x, y = make_task(name, 13)
        assert int(x.max()) < vocab_size(name, 13) and int(y.max()) < vocab_size(name, 13)


@pytest.mark.parametrize("n,frac", [(9409, 0.8), (9312, 0.5), (1024, 0.7), (169, 0.3), (10, 0.55)])
def test_split_is_a_seeded_partition(n, frac):
    train, val = split_indices(n, frac, seed=3)
    assert len(train) == math.floor(frac * n) and len(train) + len(val) == n
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(n))
    again_train, again_val = split_indices(n, frac, seed=3)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    other_train, _ = split_indices(n, frac, seed=4)
    assert set(other_train.tolist()) != set(train.tolist())


def test_is_prime():
    assert [n for n in range(30) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
    assert is_prime(97) and not is_prime(91)


def test_each_task_is_named_once_in_each_place_a_new_one_goes():
    # README's "Adding a task": a line in tasks.BINARY (parity has its own rows), its train fraction in
    # names.py (tests/test_config.py checks it against the yaml), and conf/task/<name>.yaml. A task
    # missing from any of them would be refused by the config check or fail to compose.
    from grokmuon.config import CONF
    from grokmuon.tasks import BINARY
    assert set(BINARY) | {"parity"} == set(TASKS)
    assert sorted(p.stem for p in (CONF / "task").glob("*.yaml")) == sorted(TASKS)
