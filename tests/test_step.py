"""The capturable train step (grokmuon/step.py): eager it keeps every committed number (to the CPU's float
rounding: see test_eager_step_gives_a_committed_cells_numbers); its
per-step numbers live on the device; compiled (compile=step) it has no graph break and gives the eager
step's numbers."""
from __future__ import annotations

import csv
import json
import math
import sys

import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO, compose_config, step_of
from grokmuon.config import Config
from grokmuon.model import MaskStream
from grokmuon.optim import BatchedAdamW, BatchedMuon
from grokmuon.runid import config_hash
from grokmuon.step import Clock, lr_factor
from grokmuon.train import train

COLUMNS = ("train_acc", "val_acc", "train_loss", "val_loss")


# How far a number trained again may sit from the committed one. Float sums are reduced in an order that
# depends on the CPU's vector width (AVX2 against AVX-512): on the machine that wrote the metrics the
# replay is bit for bit (it was, when the step moved to the device), on another the losses drift by a few
# float32 ulps (measured: at most 2e-7 relative over 3 epochs) and a sparsemax member flipped one
# validation prediction in ~4,700 (0.0002). A changed step (an lr, a decay, a mask off by one) moves
# them by orders of magnitude more after 3 epochs.
LOSS_RTOL = 1e-5        # relative, losses: 50x the drift measured across CPUs
ACC_ATOL = 1e-3         # absolute, accuracies: ~5 predictions in the validation split of gcd


def replay(folder, epochs: int) -> tuple[int, list]:
    """Train a committed run folder's config again for its first `epochs` epochs, eager on this CPU; the
    numbers compared with its metrics.csv and those that differ beyond the CPU's rounding (LOSS_RTOL,
    ACC_ATOL)."""
    raw = json.loads((folder / "config.json").read_text())
    cfg = OmegaConf.merge(OmegaConf.structured(Config), {k: v for k, v in raw.items() if k != "hydra"})
    cfg.logger.name, cfg.progress, cfg.device = "none", False, "cpu"
    got = {}

    def on_epoch(epoch, numbers, results):
        for e in range(len(results)):
            got[(epoch, e)] = {k: numbers[k][e] for k in COLUMNS}
    train(cfg, on_epoch=on_epoch, should_stop=lambda: max(e for e, _ in got) >= epochs)
    compared, differ = 0, []
    with open(folder / "metrics.csv") as f:
        for row in csv.DictReader(f):
            for k, v in got.get((int(row["epoch"]), int(row["member"])), {}).items():
                if row[k] == "" and math.isnan(v):        # eval_train=lazy skipped it, then and now
                    continue
                compared += 1
                if k.endswith("_acc"):  # committed accuracies were float32 ratios, ours float64: the same count
                    v = float(torch.tensor(v, dtype=torch.float32))
                    close = row[k] != "" and abs(float(row[k]) - v) <= ACC_ATOL
                else:
                    close = row[k] != "" and math.isclose(float(row[k]), v, rel_tol=LOSS_RTOL)
                if not close:
                    differ.append((row["epoch"], row["member"], k, row[k], v))
    return compared, differ


@pytest.mark.parametrize("cell", ["gcd-muon-softmax-e5030ad9", "gcd-adamw-softmax-7749d3e6", "gcd-muon-sparsemax-4cc11d50"])
def test_eager_step_gives_a_committed_cells_numbers(cell):
    """Muon (per-member lr tensors, and its AdamW part with Python-float lr), AdamW and sparsemax cells of the
    committed heads study, model=small, 2 members, lazy train evaluation: 3 epochs trained again equal
    metrics.csv to the CPU's float rounding (bit for bit on the CPU that wrote them; 20 epochs were checked
    that way when the step moved to the device)."""
    folder = REPO / "multirun" / "heads" / cell
    compared, differ = replay(folder, 3)
    assert compared >= 3 * 2 * 2 and differ == []


def test_replay_tolerance_still_catches_a_changed_step(monkeypatch):
    """The tolerance is not blind: the same cell with Muon's lr 1% higher differs from metrics.csv."""
    import grokmuon.train as train_mod
    real = train_mod.train

    def nudged(cfg, **kw):
        cfg.optimizer.lr = cfg.optimizer.lr * 1.01
        return real(cfg, **kw)
    monkeypatch.setattr(sys.modules[__name__], "train", nudged)
    compared, differ = replay(REPO / "multirun" / "heads" / "gcd-muon-softmax-e5030ad9", 3)
    assert compared >= 12 and len(differ) >= compared // 2, differ


def test_compile_off_keeps_every_committed_hash(compose_cfg):
    """compile=off is what every committed run did, so it is left out of the hash; compile=step is not."""
    cfg = OmegaConf.to_container(compose_cfg("optimizer=muon", "task=modadd"), resolve=True)
    off = dict(cfg)
    del off["compile"]
    assert config_hash(cfg) == config_hash(off)
    assert config_hash({**cfg, "compile": "step"}) != config_hash(cfg)


def _adamw_pair(lr, wd):
    torch.manual_seed(1)
    w0 = torch.randn(3, 5, 4)
    a, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    return a, b, BatchedAdamW([a], lr=lr, weight_decay=wd, betas=(0.9, 0.98)), \
        BatchedAdamW([b], lr=lr, weight_decay=wd, betas=(0.9, 0.98), horizon=40)


@pytest.mark.parametrize("per_member", [False, True])
def test_device_step_count_and_warmup_factor_give_the_python_numbers_bit_for_bit(per_member):
    """AdamW with a device step count and bias tables, its lr times a 0-dim float64 warm-up factor,
    against the Python loop it replaced (lr multiplied by lr_factor on the host, an int count)."""
    lr = torch.tensor([1e-3, 3e-3, 2e-3]) if per_member else 1e-3
    wd = torch.tensor([1.0, 0.5, 0.1]) if per_member else 1.0
    a, b, host, device = _adamw_pair(lr, wd)
    clock = Clock(warmup=10, horizon=40, device=torch.device("cpu"))
    device.lr_factor = clock.factor
    for step in range(30):
        g = torch.randn(3, 5, 4)
        host.param_groups[0]["lr"] = lr * lr_factor(step, 10)
        clock.factor.copy_(clock.factors[step:step + 1])
        a.grad, b.grad = g.clone(), g.clone()
        host.step()
        device.step()
        assert torch.equal(a, b), step
    assert device.state[b]["step"].device == b.device and int(device.state[b]["step"]) == 30


def test_muon_lr_factor_gives_the_python_numbers_bit_for_bit():
    torch.manual_seed(2)
    w0 = torch.randn(2, 8, 6)
    a, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    lr = torch.tensor([0.02, 0.01])
    host = BatchedMuon([a], lr=lr, weight_decay=torch.tensor([0.05, 0.1]), ns_dtype=torch.float32)
    device = BatchedMuon([b], lr=lr, weight_decay=torch.tensor([0.05, 0.1]), ns_dtype=torch.float32)
    device.lr_factor = torch.zeros(1, dtype=torch.float64)
    for step in range(12):
        g = torch.randn(2, 8, 6)
        host.param_groups[0]["lr"] = lr * lr_factor(step, 10)
        device.lr_factor.fill_(lr_factor(step, 10))
        a.grad, b.grad = g.clone(), g.clone()
        host.step()
        device.step()
        assert torch.equal(a, b), step


def test_a_checkpointed_count_comes_back_as_the_optimizer_counts():
    """A checkpoint written before the count moved to the device holds an int; either way it loads."""
    a, b, host, device = _adamw_pair(1e-3, 1.0)
    a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    host.step()
    device.step()
    device.load_state_dict(host.state_dict())          # int count into the device optimizer
    assert torch.is_tensor(device.state[b]["step"]) and int(device.state[b]["step"]) == 1
    host.load_state_dict(device.state_dict())          # and back
    assert host.state[a]["step"] == 1


def test_mask_stream_counts_its_calls_on_the_device_in_place():
    masks = MaskStream([3, 4])
    counter = masks.calls
    first = masks.keep(torch.Size([5]), 0.5)
    masks.keep(torch.Size([5]), 0.5)
    assert masks.calls is counter and int(counter) == 2 and counter.dim() == 0
    masks.set_state(torch.tensor([0]))
    assert masks.calls is counter and torch.equal(masks.keep(torch.Size([5]), 0.5), first)


def test_compile_needs_hashed_masks(compose_cfg):
    from grokmuon.config import ConfigError, validate
    with pytest.raises(ConfigError, match="compile=step needs dropout_masks=hash or auto"):
        validate(compose_cfg("task=modadd", "optimizer=adamw", "compile=step", "dropout_masks=generator"))
    with pytest.raises(ConfigError, match="compile='graph' is unknown"):
        validate(compose_cfg("task=modadd", "optimizer=adamw", "compile=graph"))


# ----------------------------------------------------------------------------- compiled
TINY = ("task=modadd", "task.p=11", "batch_size=40", "seeds=[0,1]", "patience=0")


@pytest.mark.parametrize("optimizer,head", [
    ("muon", "softmax"), ("adamw", "stablemax"), ("muon", "sparsemax"),      # each optimizer and head once
    *(pytest.param(o, h, marks=pytest.mark.slow) for o, h in (("adamw", "softmax"), ("muon", "stablemax"),
                                                             ("adamw", "sparsemax")))])
def test_the_step_traces_as_one_graph(optimizer, head):
    """torch._dynamo.explain over the whole step (forward, loss, backward, both optimizers' updates, the
    hashed masks): one graph, no break. Every optimizer x head pair; three of them marked slow."""
    assert_one_graph(compose_config(*TINY, f"optimizer={optimizer}", f"head={head}", "compile=step", "max_epochs=5"))


@pytest.mark.parametrize("ablation", ["optimizer.split=all", "optimizer.ns_steps=0", "optimizer.momentum=0"])
def test_muon_ablations_trace_as_one_graph(ablation):
    assert_one_graph(compose_config(*TINY, "optimizer=muon", ablation, "compile=step", "max_epochs=5"))


@pytest.mark.parametrize("arm", [("optimizer=normuon",), ("optimizer=adamw", "optimizer.orthogonal_grad=true"),
                                 ("optimizer=adamw", "grokfast=ema")],
                         ids=["normuon", "adamw orthogonal_grad", "adamw grokfast"])
def test_the_ablation_arms_trace_as_one_graph(arm):
    assert_one_graph(compose_config(*TINY, *arm, "compile=step", "max_epochs=5"))


def assert_one_graph(cfg):
    step, batch = step_of(cfg)
    step._step(batch)                          # the eager first step: the optimizers' state exists
    torch._dynamo.reset()
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        report = torch._dynamo.explain(step._step)(batch)
    assert report.graph_break_count == 0, report.break_reasons
    assert report.graph_count == 1


def history(*overrides):
    rows, results = [], None
    results = train(compose_config(*TINY, *overrides),
                    on_epoch=lambda e, n, r: rows.append({k: list(n[k]) for k in COLUMNS}))
    return rows, results


@pytest.mark.slow
def test_compiled_run_equals_the_eager_run():
    """compile=step (inductor, fullgraph) against the same config eager with the same hashed masks: the
    curves to float rounding, and the memorisation epochs (16 and 26 here) and grokking epochs exactly.
    Muon with its AdamW part at lr 0.01 so that something happens in 30 epochs. Minutes on a CPU: slow."""
    torch._dynamo.reset()
    common = ("optimizer=muon", "max_epochs=30", "task.train_frac=0.6", "model.dropout=0.1", "batch_size=16",
              "optimizer.adamw_lr=0.01", "optimizer.adamw_weight_decay=0.1")
    eager, er = history(*common, "dropout_masks=hash")
    comp, cr = history(*common, "compile=step")
    assert len(eager) == len(comp)
    # Rounding differences grow over 150 steps at this lr: close early, looser late (1e-2 by epoch 30).
    for epoch, (a, b) in enumerate(zip(eager, comp), 1):
        for k in COLUMNS:
            assert b[k] == pytest.approx(a[k], rel=1e-5 if epoch <= 3 else 1e-2, abs=1e-6), (epoch, k)
    epochs = lambda results: [(r.memorisation_epoch, r.grokking_epoch) for r in results]    # noqa: E731
    assert epochs(cr) == epochs(er)
    assert any(r.memorisation_epoch for r in er)      # the comparison saw something happen


@pytest.mark.parametrize("arm", [("optimizer=muon",), ("optimizer=adamw", "grokfast=ema")], ids=["muon", "adamw grokfast"])
def test_the_captured_step_gives_the_eager_steps_numbers(arm):
    """The whole step as one captured graph (dynamo + AOTAutograd, backend aot_eager: the capture
    without inductor's code generation, seconds on a CPU) against the eager step, 4 steps from the same
    start: the same weights to float rounding, and the device counters moved the same (grokfast: the
    gradient filter's EMA too)."""
    torch._dynamo.reset()
    cfg = compose_config(*TINY, *arm, "compile=step", "max_epochs=5")
    (eager, batch), (captured, _) = step_of(cfg), step_of(cfg)
    start = [w.detach().clone() for w in captured.model.parameters()]
    eager._step(batch)
    captured._step(batch)
    graph = torch.compile(captured._step, fullgraph=True, dynamic=False, backend="aot_eager")
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        for _ in range(3):
            eager._step(batch)
            graph(batch)
    for a, b, w0 in zip(eager.model.parameters(), captured.model.parameters(), start):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        assert not torch.equal(b, w0)                               # the captured steps moved every weight
    assert int(captured.clock.step) == int(eager.clock.step) == 4
    if eager.grad_filter is not None:
        for name, ema in eager.grad_filter.ema.items():
            torch.testing.assert_close(captured.grad_filter.ema[name], ema, rtol=1e-5, atol=1e-6)
    assert int(captured.masks.calls) == int(eager.masks.calls) > 0


def test_a_checkpoint_from_before_the_device_step_resumes_the_same(tmp_path):
    """Checkpoints written before this step kept the warm-up in the groups (lr = base x factor, base_lr)
    and AdamW's count as an int: resumed, such a checkpoint gives the numbers of a new one. Cut inside the
    warm-up (batch 8: 5 steps an epoch, 10 warm-up steps), where lr x factor differs from lr."""
    from grokmuon import checkpoint
    cfg = compose_config("task=modadd", "task.p=7", "batch_size=8", "seeds=[3,4]", "max_epochs=4", "patience=0",
                         "optimizer=muon", "grid.lr=[0.01,0.02]")
    cut = []
    train(cfg, on_epoch=lambda e, n, r: cut.append(e), should_stop=lambda: len(cut) >= 1,
          saver=checkpoint.Saver(tmp_path, "h", every=0))
    state = checkpoint.load(tmp_path / checkpoint.CHECKPOINT, "h")
    old = checkpoint.load(tmp_path / checkpoint.CHECKPOINT, "h")
    factor = lr_factor(state["step"] - 1, cfg.optimizer.warmup_steps)
    assert factor < 1
    for saved in old["optimizers"]:
        for group in saved["param_groups"]:
            group["base_lr"], group["lr"] = group["lr"], group["lr"] * factor
        for s in saved["state"].values():
            if "step" in s:
                s["step"] = int(s["step"])
    rows = {}
    for name, resume in (("new", state), ("old", old)):
        rows[name] = []
        train(cfg, on_epoch=lambda e, n, r: rows[name].append({k: list(n[k]) for k in COLUMNS}), resume=resume)
    assert rows["old"] == rows["new"] and len(rows["new"]) == 3
