"""dropout_masks=hash (model.MaskStream, the GPU default): every member's dropout mask in one draw, still
member-private. Its integer hash against plain Python arithmetic, its keep rate, a member equal to its solo
run, and a resumed run equal to an uninterrupted one, all forced on the CPU."""
from __future__ import annotations

import random

import pytest
import torch

from grokmuon import checkpoint
from grokmuon.config import ConfigError, validate
from grokmuon.model import M32, MaskStream, mix32, mul32
from grokmuon.train import dropout_source

from conftest import compose_config
from test_checkpoint import history


def py_mix32(x: int) -> int:
    """lowbias32 in Python's unbounded ints: the reference for mix32."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def test_mul32_and_mix32_equal_plain_integer_arithmetic():
    rng = random.Random(0)
    xs = [0, 1, M32, 2 ** 31, 0xFFFF, 0x10000] + [rng.randrange(2 ** 32) for _ in range(2000)]
    t = torch.tensor(xs, dtype=torch.int64)
    for c in (0x7FEB352D, 0x846CA68B, M32, 3):
        assert mul32(t, c).tolist() == [(x * c) & M32 for x in xs]
    assert mix32(t).tolist() == [py_mix32(x) for x in xs]


def test_masks_are_member_private_fresh_each_call_and_keep_one_minus_p():
    shape, p = torch.Size([64, 4, 32]), 0.1
    solo, ens = MaskStream([5]), MaskStream([11, 5, 2])
    first = ens.keep(shape, p)
    assert first.shape == (3, *shape)
    assert torch.equal(solo.keep(shape, p)[0], first[1])                 # member 5's mask does not depend on E
    assert torch.equal(solo.keep(shape, p)[0], ens.keep(shape, p)[1])    # ... nor on the call it is at
    assert not torch.equal(first[0], first[1])                           # members differ
    again = MaskStream([5])
    assert not torch.equal(again.keep(shape, p), again.keep(shape, p))   # each call draws anew
    n = first.numel()
    assert abs(first.float().mean().item() - (1 - p)) < 4 * ((p * (1 - p) / n) ** 0.5)   # binomial, 4 sd


def test_state_round_trip_resumes_the_stream():
    a = MaskStream([1, 2])
    a.keep(torch.Size([8]), 0.5)
    b = MaskStream([1, 2])
    b.set_state(a.get_state())
    assert torch.equal(a.keep(torch.Size([8]), 0.5), b.keep(torch.Size([8]), 0.5))


def test_auto_is_generators_on_a_cpu_and_hash_when_asked():
    cpu = torch.device("cpu")
    gens = [torch.Generator()]
    assert dropout_source(compose_config(), [0], cpu, gens) is gens        # every committed CPU run
    assert isinstance(dropout_source(compose_config("dropout_masks=hash"), [0], cpu, gens), MaskStream)
    with pytest.raises(ConfigError, match="dropout_masks"):
        validate(compose_config("dropout_masks=bernoulli"))


HASHED = ["task=modadd", "task.p=13", "batch_size=32", "model.n_layers=2", "model.dropout=0.1", "patience=0",
          "dropout_masks=hash", "optimizer=muon"]


def test_member_equals_its_solo_run_with_hashed_masks():
    _, solo = history(compose_config(*HASHED, "max_epochs=3", "seeds=[5]"))
    _, ens = history(compose_config(*HASHED, "max_epochs=3", "seeds=[11,5,2]"))
    for (_, s), (_, e) in zip(solo, ens):
        for key in ("train_loss", "val_loss"):
            assert e[key][1] == pytest.approx(s[key][0], rel=1e-5, abs=1e-6), key
    assert ens[-1][1]["train_loss"][0] != ens[-1][1]["train_loss"][1]
    _, plain = history(compose_config(*HASHED[:-2], "optimizer=muon", "max_epochs=3", "seeds=[5]"))
    assert plain[-1][1]["train_loss"] != solo[-1][1]["train_loss"]        # other masks: other numbers


def test_resumed_run_with_hashed_masks_equals_the_uninterrupted_one(tmp_path):
    cfg = compose_config(*HASHED, "max_epochs=6", "seeds=[3,4]")
    _, full = history(cfg)
    saver, cut = checkpoint.Saver(tmp_path, "h", every=0), []
    history(cfg, cut, saver=saver, should_stop=lambda: len(cut) >= 2)
    _, rest = history(cfg, resume=checkpoint.load(tmp_path / checkpoint.CHECKPOINT, "h"))
    assert cut + rest == full
