"""The train step: forward, loss, backward and update of one batch for every member, written so that it
can be compiled whole (config `compile=step`) or captured as a CUDA graph.

What that asks of the step, and how it is met:
- no Python number that changes from step to step. The step count is a device tensor (Clock.step); the
  warm-up factor is read from a table by it (Clock.factors, computed once in Python doubles by lr_factor,
  so the numbers are the Python loop's) into a device tensor the optimizers multiply their lr by; AdamW
  counts its own steps on the device (optim.BatchedAdamW, horizon); the hashed dropout masks count their
  calls on the device (model.MaskStream). A compiler would bake a Python number in as a constant and
  compile again on every step; a CUDA graph would replay a stale one.
- no host sync: the batch's rows are gathered on the device, a diverged member's loss is masked with
  torch.where on the device `alive` flags, nothing is read back.
- static shapes: the epoch's last, shorter batch is a second shape (one more compiled graph), so every
  member's numbers are exactly those of the full-batch mean; padding would change the mean's rounding.

Eager (compile=off, the default) runs this same function step by step, so the committed CPU study keeps
its numbers bit for bit (tests/test_step.py replays a committed cell). compile=step runs it through
torch.compile(fullgraph=True): a graph break is an error, not a silent slow path. The compiled step's
numbers equal the eager step's to float rounding (the compiler fuses and reorders elementwise work), so a
compiled run is its own run (runid keeps compile in the hash when not off); tests compare the two.
"""
from __future__ import annotations

import contextlib

import torch

from . import heads
from .model import MaskStream


def lr_factor(step: int, warmup: int) -> float:
    """Linear warm-up over the first `warmup` steps, then 1."""
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


class Clock:
    """The step count and this step's warm-up factor, as device tensors changed in place by the step."""

    def __init__(self, warmup: int, horizon: int, device: torch.device):
        self.step = torch.zeros((), dtype=torch.int64, device=device)
        self.factors = torch.tensor([lr_factor(i, warmup) for i in range(horizon + 1)], dtype=torch.float64,
                                    device=device)
        # [1], not 0-dim: torch.compile (2.13) dropped an in-place copy into a 0-dim input of the graph
        self.factor = torch.ones(1, dtype=torch.float64, device=device)


def _no_phase(name: str):
    return contextlib.nullcontext()


class TrainStep:
    """step(batch [E, b] train-row indices): one optimizer step of every member on its own rows.

    alive [E] bools (a diverged member's loss is left out) is read on every call: the trainer changes
    it in place. groups: the member slices run one after another (train.member_groups); masks: each
    member's dropout generator (a list) or a MaskStream. autocast: the forward's autocast dtype (None:
    fp32). phase(name): a context marking the step's parts for the profiler (eager only; the compiled
    step is one piece). grad_filter: applied to the summed gradients before the optimizers (grokfast=ema).
    """

    def __init__(self, model, optimizers, inputs: torch.Tensor, labels: torch.Tensor, head: str, alive: torch.Tensor,
                 masks, groups: list[slice], clock: Clock, autocast: torch.dtype | None = None, compile: str = "off",
                 phase=_no_phase, grad_filter=None):
        self.grad_filter = grad_filter      # grokfast.GradFilterEMA: the gradients filtered before the step
        self.model, self.optimizers, self.inputs, self.labels, self.head = model, optimizers, inputs, labels, head
        self.alive, self.masks, self.groups, self.clock, self.autocast = alive, masks, groups, clock, autocast
        self.phase = phase if compile == "off" else _no_phase
        self.weights = [p for opt in optimizers for g in opt.param_groups for p in g["params"]]
        for opt in optimizers:
            opt.lr_factor = clock.factor
        self.compiled = None
        if compile == "step":
            if not isinstance(masks, MaskStream) and model.shape.dropout > 0:
                raise ValueError("compile=step needs hashed dropout masks (dropout_masks=hash or auto): "
                                 "per-member generators do not trace")
            device = inputs.device
            # A run's compiled graphs guard on its own tensors; a later run in the same process (a sweep's
            # next cell) would compile anew and count against torch.compile's recompile limit, past which
            # it runs eager without a word. So each compiled run starts from an empty cache, and the limit,
            # should it be hit, is an error (see __call__).
            torch._dynamo.reset()
            # dynamic=False: the full and the last batch are two static shapes, two graphs; reduce-overhead
            # on CUDA captures each as a CUDA graph (one launch a step).
            self.compiled = torch.compile(self._step, fullgraph=True, dynamic=False,
                                          mode="reduce-overhead" if device.type == "cuda" else None)
        self.calls = 0

    def _mark_static(self) -> None:
        """CUDA graphs replay from fixed addresses: every tensor the step reads or changes in place, other
        than the batch, stays where it is (the optimizers' state exists after the first step), so a
        replay neither copies it in nor skips the graph for mutating it."""
        fixed = [self.alive, self.inputs, self.labels, self.clock.step, self.clock.factor, self.clock.factors]
        if isinstance(self.masks, MaskStream):
            fixed += [self.masks.calls, self.masks.keys]
        for opt in self.optimizers:
            fixed += [t for state in opt.state.values() for t in state.values() if torch.is_tensor(t)]
            fixed += [t for tables in getattr(opt, "tables", []) if tables for t in tables]
            fixed += [v for g in opt.param_groups for v in g.values() if torch.is_tensor(v)]
        if self.grad_filter is not None:
            fixed += self.grad_filter.tensors()
        for t in fixed:
            torch._dynamo.mark_static_address(t)

    def _step(self, batch: torch.Tensor) -> None:
        clock = self.clock
        clock.factor.copy_(clock.factors.index_select(0, clock.step.view(1)))
        for ms in self.groups:
            masks = self.masks[ms] if isinstance(self.masks, list) else self.masks
            rows = batch[ms]
            with self.phase("forward"):
                with (torch.autocast(batch.device.type, dtype=self.autocast) if self.autocast
                      else contextlib.nullcontext()):
                    logits = self.model(self.inputs[rows], masks, members=ms)
                loss = heads.row_losses(self.head, logits.float(), self.labels[rows]).mean(1)
            # Members are independent: the sum's gradient for member e is its own loss's gradient.
            # A diverged member's NaN stays in its own weights; torch.where keeps it out of the sum.
            with self.phase("backward"):
                torch.where(self.alive[ms], loss, torch.zeros_like(loss)).sum().backward()
        with self.phase("optimizer"):
            if self.grad_filter is not None:
                self.grad_filter.apply()
            for opt in self.optimizers:
                opt.step()
            for w in self.weights:      # zero_grad(set_to_none=True), which torch.compile will not trace
                w.grad = None
        clock.step.add_(1)

    def __call__(self, batch: torch.Tensor) -> None:
        # The first step runs eagerly: it creates the optimizers' state, which a compiled first step would
        # create inside its graph and then have to compile again without.
        self.calls += 1
        if self.compiled is None or self.calls == 1:
            self._step(batch)
            if self.compiled is not None and batch.device.type == "cuda":
                self._mark_static()
            return None
        # trace_autograd_ops: .backward() inside the graph; fail_on_recompile_limit_hit: never eager silently
        with torch._dynamo.config.patch(trace_autograd_ops=True, fail_on_recompile_limit_hit=True):
            return self.compiled(batch)
