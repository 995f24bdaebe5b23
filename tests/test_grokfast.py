"""Grokfast-EMA (grokfast=ema): the filter against the authors' gradfilter_ema (a per-parameter dict loop,
copied below), every member its own filter, the trainer's steps against that loop, a resumed run equal to
an uninterrupted one, grokfast=none leaving training and hashes as they were, and bad values in one line."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from grokmuon import checkpoint, grokfast
from grokmuon.config import ConfigError, validate
from grokmuon.runid import config_hash
from grokmuon.train import train

from conftest import compose_config, step_of


def gradfilter_ema(m: nn.Module, grads=None, alpha: float = 0.98, lamb: float = 2.0):
    """The authors' filter (ironjr/grokfast, grokfast.py), as they wrote it."""
    if grads is None:
        grads = {n: p.grad.data.detach() for n, p in m.named_parameters() if p.requires_grad and p.grad is not None}
    for n, p in m.named_parameters():
        if p.requires_grad and p.grad is not None:
            grads[n] = grads[n] * alpha + p.grad.data.detach() * (1 - alpha)
            p.grad.data = p.grad.data + grads[n] * lamb
    return grads


class Stacked(nn.Module):
    """Member-stacked weights [E, ...], as the ensemble holds them."""

    def __init__(self, E: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(E, 5, 3))
        self.g = nn.Parameter(torch.randn(E, 1, 3))


class Solo(nn.Module):
    def __init__(self, w, g):
        super().__init__()
        self.w, self.g = nn.Parameter(w.clone()), nn.Parameter(g.clone())


def test_the_filter_is_the_authors_and_each_member_has_its_own():
    """Six steps of random gradients: the stacked filter's gradients equal, bit for bit, the authors' loop
    on the stacked model and on each member alone (a solo model fed only that member's gradients), and an
    optimizer step on the filtered gradients gives the same weights."""
    E, alpha, lamb = 3, 0.9, 2.0
    ours = Stacked(E)
    theirs = Stacked(E)
    theirs.load_state_dict(ours.state_dict())
    solos = [Solo(ours.w[e].detach(), ours.g[e].detach()) for e in range(E)]
    f = grokfast.GradFilterEMA(ours, alpha, lamb)
    opt_ours, opt_theirs = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (ours, theirs))
    ref, solo_refs = None, [None] * E
    for _ in range(6):
        grads = {"w": torch.randn(E, 5, 3), "g": torch.randn(E, 1, 3)}
        for m in (ours, theirs):
            for n, p in m.named_parameters():
                p.grad = grads[n].clone()
        for e, s in enumerate(solos):
            for n, p in s.named_parameters():
                p.grad = grads[n][e].clone()
        f.apply()
        ref = gradfilter_ema(theirs, ref, alpha, lamb)
        solo_refs = [gradfilter_ema(s, r, alpha, lamb) for s, r in zip(solos, solo_refs)]
        for n, p in ours.named_parameters():
            assert torch.equal(p.grad, dict(theirs.named_parameters())[n].grad), n
            assert not torch.equal(p.grad, grads[n])                       # the filter did something
            for e, s in enumerate(solos):
                assert torch.equal(p.grad[e], dict(s.named_parameters())[n].grad), (n, e)
        opt_ours.step()
        opt_theirs.step()
        for a, b in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(a, b)


RUN = ("task=modadd", "task.p=13", "batch_size=32", "model.n_layers=2", "max_epochs=6", "patience=0")


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_the_trainers_steps_equal_the_authors_loop_before_the_optimizer(optimizer):
    """The train step with grokfast=ema against the same step without a filter whose first optimizer runs
    the authors' gradfilter_ema on the whole model first: the same weights, bit for bit, after 4 steps of
    3 members."""
    common = (*RUN, f"optimizer={optimizer}", "seeds=[0,1,2]")
    ours, batch = step_of(compose_config(*common, "grokfast=ema"))
    plain, _ = step_of(compose_config(*common))
    assert ours.grad_filter is not None and plain.grad_filter is None
    start = [p.detach().clone() for p in plain.model.parameters()]
    for a, b in zip(ours.model.parameters(), start):
        assert torch.equal(a, b)
    state = {"grads": None}
    first = plain.optimizers[0]
    real_step = first.step

    def filtered_step(*a, **k):
        state["grads"] = gradfilter_ema(plain.model, state["grads"], 0.98, 2.0)
        return real_step(*a, **k)
    first.step = filtered_step
    for _ in range(4):
        ours._step(batch)
        plain._step(batch)
    for (n, a), b, w0 in zip(ours.model.named_parameters(), plain.model.parameters(), start):
        assert torch.equal(a, b), n
        assert not torch.equal(a, w0), n
    for n, ema in ours.grad_filter.ema.items():
        assert torch.equal(ema, state["grads"][n]), n


def history(cfg, rows=None, **kw):
    rows = [] if rows is None else rows
    results = train(cfg, on_epoch=lambda e, numbers, _: rows.append((e, {k: list(v) for k, v in numbers.items()})), **kw)
    return results, rows


def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path):
    """The EMA is in the checkpoint: cut after epoch 2 and resumed, every number of every epoch equals the
    uninterrupted run's (without the EMA the resumed run would restart it from the next gradient)."""
    cfg = compose_config(*RUN, "optimizer=adamw", "seeds=[3,4]", "grokfast=ema")
    full_results, full = history(cfg)
    cut = []
    history(cfg, cut, saver=checkpoint.Saver(tmp_path, "h", every=0), should_stop=lambda: len(cut) >= 2)
    state = checkpoint.load(tmp_path / checkpoint.CHECKPOINT, "h")
    assert set(state["grokfast"]["ema"]) == {n for n, _ in compose_and_build_names(cfg)}
    rest_results, rest = history(cfg, resume=state)
    assert cut + rest == full
    assert [vars(r) for r in rest_results] == [vars(r) for r in full_results]
    state.pop("grokfast")                   # the same checkpoint without the EMA: a different run
    _, lost = history(cfg, resume=state)
    assert cut + lost != full


def compose_and_build_names(cfg):
    from grokmuon.train import build_model
    return build_model(cfg, [0], torch.device("cpu")).named_parameters()


def test_a_member_equals_its_solo_run():
    """Member 1 of a two-seed ensemble with grokfast=ema equals the solo run of its seed, bit for bit."""
    cfg = compose_config(*RUN, "optimizer=muon", "seeds=[3,4]", "grokfast=ema", "max_epochs=3")
    _, both = history(cfg)
    _, solo = history(compose_config(*RUN, "optimizer=muon", "seeds=[4]", "grokfast=ema", "max_epochs=3"))
    for (e, a), (f, b) in zip(both, solo):
        assert e == f
        for k in ("train_acc", "val_acc", "train_loss", "val_loss"):
            assert a[k][1] == b[k][0], (e, k)


def test_none_trains_as_before_and_lamb_zero_changes_nothing():
    """grokfast=none builds no filter; grokfast=ema with lamb 0 adds exactly nothing (g + 0 * ema = g), so
    its numbers are the unfiltered run's; lamb 2 (the default) changes them."""
    base = (*RUN, "optimizer=adamw", "seeds=[0]", "max_epochs=3")
    _, plain = history(compose_config(*base))
    _, zero = history(compose_config(*base, "grokfast=ema", "grokfast.lamb=0"))
    _, ema = history(compose_config(*base, "grokfast=ema"))
    assert zero == plain
    assert ema != plain


def test_the_default_node_leaves_the_hash_and_ema_changes_it():
    cfg = compose_config("task=modadd")
    from omegaconf import OmegaConf
    plain = OmegaConf.to_container(cfg, resolve=True)
    without = {k: v for k, v in plain.items() if k != "grokfast"}
    assert config_hash(plain) == config_hash(without)
    assert config_hash({**plain, "grokfast": {"name": "ema", "alpha": 0.98, "lamb": 2.0}}) != config_hash(plain)


@pytest.mark.parametrize("override,needle", [("grokfast.name=lowpass", "grokfast='lowpass' is unknown"),
                                             ("grokfast.alpha=1.0", "grokfast.alpha=1.0 must lie in [0, 1)"),
                                             ("grokfast.lamb=-1", "grokfast.lamb=-1.0 must be >= 0")])
def test_bad_values_are_one_line(override, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        validate(compose_config("grokfast=ema", override))


def test_an_unknown_filter_on_the_command_line_is_one_line_exit_2(tmp_path):
    for arg in ("grokfast=lowpass", "grokfast.name=lowpass"):
        r = subprocess.run([sys.executable, "-m", "grokmuon.cli", "train", arg, "model=tiny", "logger=none",
                            f"hydra.run.dir={tmp_path / 'r'}"], capture_output=True, text=True, cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("grokmuon: error:"), r.stderr
        assert "lowpass" in lines[0]
    assert not (tmp_path / "r").exists()
