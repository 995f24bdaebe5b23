"""train(cfg): the epoch loop for an ensemble of members. No Hydra in here.

A member is (seed, lr, weight_decay) (config.members: every seed at every point of cfg.grid). From its
seed it has its own split, initial weights, batch order and dropout masks, drawn from member-private
generators, and the optimizers take its own lr and decay: member e of an ensemble equals a solo run with
its seed, lr and weight decay. Members of one seed share split, init and batch order across the grid.
After each epoch every member is evaluated in eval mode on the full train and val splits (with
eval_train=lazy the train split only on the epochs that can change a grokking or memorisation epoch, see
needs_train); the host reads the numbers once per epoch, never inside the step loop.

A member whose loss or weights become NaN/inf is marked diverged at that epoch and frozen: its loss
is left out of the backward pass and its weights are put back after every step, so it stops
updating, and the others train exactly as they would without it (members share no numbers).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field

import torch

from . import fourier, grokfast, heads, metrics, probes, racing
from .config import members as member_list
from .model import EnsembleTransformer, MaskStream, ModelShape
from .optim import build_optimizers
from .step import Clock, TrainStep, lr_factor
from .tasks import make_task, split_indices, vocab_size

# Streams derived from a member's seed, so split, init and training draws never share numbers.
SPLIT, INIT, TRAIN = 0, 1, 2


def member_generator(seed: int, stream: int, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + stream)


def dropout_source(cfg, seeds: list[int], device: torch.device, train_gens: list[torch.Generator]):
    """Where the members' dropout masks come from (cfg.dropout_masks). generator: each member's own
    generator, one draw per member (on a CPU the one that orders its batches, as every committed run
    did); hash: model.MaskStream, all members in one draw, member-private all the same; auto: generator
    on a CPU, hash on a GPU (E launches per dropout site per step would dominate there) and in a
    compiled step (generators do not trace)."""
    kind = cfg.get("dropout_masks", "auto")
    if kind == "hash" or (kind == "auto" and (device.type != "cpu" or cfg.get("compile", "off") != "off")):
        return MaskStream(seeds, device)
    return train_gens if device.type == "cpu" else [member_generator(s, TRAIN, device) for s in seeds]


CPU_STEP_ROWS = 4096    # member-rows per forward/backward on a CPU (train_chunk=0): 8 members at batch 512


def member_groups(E: int, batch: int, cfg, device: torch.device, dropout_gens) -> list[slice]:
    """The member groups a training step runs one after another (cfg.train_chunk members each; 0: auto,
    CPU_STEP_ROWS member-rows on a CPU, where a step over all 32 or 36 members of a raced grid leaves
    the cache, and every member at once on a GPU). A member's numbers do not depend on its group
    (tested). Hashed dropout masks (MaskStream) are drawn for all members at once: one group."""
    size = cfg.get("train_chunk", 0) or (max(1, CPU_STEP_ROWS // batch) if device.type == "cpu" else E)
    if isinstance(dropout_gens, MaskStream):
        size = E
    return [slice(lo, min(lo + size, E)) for lo in range(0, E, size)]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class MemberResult:
    seed: int
    lr: float | None = None
    weight_decay: float | None = None
    grokking_epoch: int | None = None
    memorisation_epoch: int | None = None
    status: str = "running"      # running | grokked | censored | raced_out | diverged | interrupted
    diverged_epoch: int | None = None
    epochs_run: int = 0
    final: dict = field(default_factory=dict)  # last epoch's accuracies and losses


class Data:
    """All rows on the device, plus each member's split as a row mask and a list of train rows."""

    def __init__(self, cfg, seeds: list[int], device: torch.device):
        t = cfg.task
        x, y = make_task(t.name, t.p, t.n_bits)
        self.inputs, self.labels = x.to(device), y.to(device)
        splits = [split_indices(len(y), t.train_frac, member_generator(s, SPLIT).initial_seed()) for s in seeds]
        self.train_rows = torch.stack([tr for tr, _ in splits]).to(device)          # [E, n_train]
        self.val_rows = torch.stack([va for _, va in splits]).to(device)            # [E, n_val]
        self.is_train = torch.zeros(len(seeds), len(y), dtype=torch.bool, device=device)
        self.is_train.scatter_(1, self.train_rows, True)
        self.n_train, self.n_val = self.train_rows.shape[1], len(y) - self.train_rows.shape[1]
        if self.n_train == 0 or self.n_val == 0:
            raise ValueError(f"task.train_frac={t.train_frac} leaves an empty split of {len(y)} rows")


def build_model(cfg, seeds: list[int], device: torch.device) -> EnsembleTransformer:
    m = cfg.model
    seq_len = cfg.task.n_bits + 1 if cfg.task.name == "parity" else 4
    shape = ModelShape(vocab=vocab_size(cfg.task.name, cfg.task.p), seq_len=seq_len, n_layers=m.n_layers,
                       d_model=m.d_model, n_heads=m.n_heads, d_mlp=m.d_mlp, dropout=m.dropout,
                       rope_base=m.rope_base)
    return EnsembleTransformer(shape, [member_generator(s, INIT) for s in seeds]).to(device)


def _autocast(cfg, device: torch.device):
    if cfg.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


CPU_EVAL_CHUNK, GPU_EVAL_CHUNK = 512, 65536     # eval_chunk=0 (auto): member-rows per forward (config.py)


def rows_per_forward(cfg, device: torch.device, members: int) -> int:
    """Rows of each member per evaluation forward: eval_chunk member-rows shared by the members."""
    total = cfg.eval_chunk or (CPU_EVAL_CHUNK if device.type == "cpu" else GPU_EVAL_CHUNK)
    return max(1, total // members)


@torch.no_grad()
def all_logits(model, data: Data, cfg, device):
    """The logits of every row of the task, in eval mode, chunk by chunk (rows_per_forward): yields
    (the chunk's labels [n], its logits [E, n, V] in fp32); the model is back in train mode at the end."""
    model.eval()
    chunk = rows_per_forward(cfg, device, model.n_members)
    for start in range(0, len(data.labels), chunk):
        with _autocast(cfg, device):
            logits = model(data.inputs[start:start + chunk]).float()
        yield data.labels[start:start + chunk], logits
    model.train()


@torch.no_grad()
def evaluate(model, data: Data, cfg, device) -> dict[str, torch.Tensor]:
    """Per-member accuracy and mean loss on the full train and val splits, eval mode: {name: [E]}."""
    correct, losses, logit_probes = [], [], {k: [] for k in probes.LOGIT_PROBES}
    for y, logits in all_logits(model, data, cfg, device):             # logits [E, n, V]
        yy = y.expand(model.n_members, -1)
        correct.append(logits.argmax(-1) == yy)
        losses.append(heads.row_losses(cfg.head.name, logits, yy))
        if cfg.probes:
            for k, v in probes.logit_sums(logits, yy).items():
                logit_probes[k].append(v)
    correct, losses = torch.cat(correct, 1).float(), torch.cat(losses, 1)
    tr, va = data.is_train.float(), (~data.is_train).float()
    # Accuracies in float64 from the exact counts: 19/20 in float32 is 0.94999999, which would miss the
    # rule's "val acc >= 0.95" at an exact tie (the rule's threshold is a Python float).
    return {
        "train_acc": (correct * tr).sum(1).double() / data.n_train,
        "val_acc": (correct * va).sum(1).double() / data.n_val,
        "train_loss": (losses * tr).sum(1) / data.n_train, "val_loss": (losses * va).sum(1) / data.n_val,
        **{k: (torch.cat(v, 1) * tr).sum(1) / data.n_train for k, v in logit_probes.items() if v},
    }


@torch.no_grad()
def evaluate_split(model, data: Data, cfg, device, rows: torch.Tensor, split: str,
                   logit_probes: bool = False) -> dict[str, torch.Tensor]:
    """Per-member accuracy and mean loss on each member's own rows [E, n] of one split, eval mode:
    {split_acc, split_loss (and the logit probes): [E]}. What evaluate() gives for that split, up to
    float rounding (the rows reach the matmuls in other groups); eval_train=lazy uses it."""
    model.eval()
    E, n = rows.shape
    chunk = rows_per_forward(cfg, device, E)
    correct = torch.zeros(E, device=device)
    loss = torch.zeros(E, device=device)
    sums = {k: torch.zeros(E, device=device) for k in probes.LOGIT_PROBES} if logit_probes else {}
    for start in range(0, n, chunk):
        idx = rows[:, start:start + chunk]
        y = data.labels[idx]                                            # [E, c]
        with _autocast(cfg, device):
            logits = model(data.inputs[idx]).float()                    # [E, c, V]
        correct += (logits.argmax(-1) == y).sum(1)
        loss += heads.row_losses(cfg.head.name, logits, y).sum(1)
        for k, v in (probes.logit_sums(logits, y).items() if logit_probes else ()):
            sums[k] += v.sum(1)
    model.train()
    return {f"{split}_acc": correct.double() / n,            # float64, exact at a tie, as in evaluate()
            f"{split}_loss": loss / n, **{k: v / n for k, v in sums.items()}}


@torch.no_grad()
def fourier_numbers(model, data: Data, cfg, device) -> dict[str, torch.Tensor]:
    """fourier.py's probes of every member ({name: [E]}): the embedding's (Gini of its frequency norms, the
    key frequencies) and, from the logits of every row in eval mode, the restricted and excluded losses
    over each member's training rows. {} for a task they are not defined on (fourier.applies)."""
    task, p = cfg.task.name, cfg.task.p
    emb = fourier.embedding_probes(model.embed.detach().float(), task, p)
    if not emb:
        return {}
    logits = torch.cat([z for _, z in all_logits(model, data, cfg, device)], 1)
    loss = fourier.logit_probes(logits, data.labels, data.is_train, emb["key_freqs"], task, p,
                                cfg.head.name)
    keys = {f"key_freq_{i + 1}": emb["key_freqs"][:, i].float() for i in range(emb["key_freqs"].shape[1])}
    return {"fourier_gini": emb["fourier_gini"], **keys, **loss}


def needs_train(results, val_acc: list[float], epoch: int, cfg) -> bool:
    """eval_train=lazy: whether this epoch measures the train split. It must wherever a grokking or
    memorisation epoch could fall (a running member not yet memorised; one not yet grokked whose val
    accuracy reached the threshold), where a member's patience ends (the run may end there: its final
    numbers), every eval_train_every epochs (the curves) and at the budget."""
    if epoch % cfg.eval_train_every == 0 or epoch == cfg.max_epochs:
        return True
    for r, va in zip(results, val_acc):
        if r.status != "running":
            continue
        if r.memorisation_epoch is None or (r.grokking_epoch is None and va >= cfg.grok_val_acc):
            return True
        if r.grokking_epoch is not None and epoch == r.grokking_epoch + cfg.patience:
            return True
    return False


def evaluate_lazy(model, data: Data, cfg, device, results, epoch: int) -> tuple[dict[str, torch.Tensor], bool]:
    """eval_train=lazy: the val split, then the train split only if needs_train (else NaN, written blank).
    Returns the numbers and whether the train split was measured."""
    numbers = evaluate_split(model, data, cfg, device, data.val_rows, "val")
    measured = needs_train(results, numbers["val_acc"].tolist(), epoch, cfg)
    if measured:
        numbers.update(evaluate_split(model, data, cfg, device, data.train_rows, "train", cfg.probes))
    else:
        nan = torch.full_like(numbers["val_acc"], math.nan)
        numbers.update({k: nan for k in ("train_acc", "train_loss", *(probes.LOGIT_PROBES if cfg.probes else ()))})
    return numbers, measured


@torch.no_grad()
def weights_finite(model) -> torch.Tensor:
    """[E] bools: every weight of member e is finite."""
    return torch.stack([p.isfinite().flatten(1).all(1) for p in model.parameters()]).all(0)


@torch.no_grad()
def restore_frozen(model, alive: torch.Tensor, frozen: list[torch.Tensor]) -> None:
    """Put diverged members' weights back to what they were when they diverged. Their loss is already
    left out, but the optimizers would still move them (momentum, weight decay, NaN gradients)."""
    for p, f in zip(model.parameters(), frozen):
        p.copy_(torch.where(alive.view(-1, *[1] * (p.dim() - 1)), p, f))


def phase(name: str):
    """Marks a part of the epoch for torch.profiler (`grokmuon bench --profile` sums them); about a
    microsecond when no profiler runs."""
    return torch.profiler.record_function(f"grokmuon.{name}")


def train(cfg, on_epoch=None, should_stop=None, saver=None, resume: dict | None = None) -> list[MemberResult]:
    """Train the members of cfg (config.members: seeds x grid); return their results.

    on_epoch(epoch, numbers: {name: list[float] per member}, results) is called after each epoch's
    evaluation (the run log writes there). should_stop() -> bool is polled once per epoch (signals).
    saver (checkpoint.Saver) gets the whole state every saver.every epochs and at an interruption, and
    the model at the end; resume (a state it saved) continues that run from the epoch after it.
    """
    device = pick_device(cfg.device)
    if cfg.precision == "bf16" and device.type == "cuda":
        # cuDNN's attention refused our bf16 shapes on an H200 (torch 2.11+cu130: "mha_graph.execute
        # ... is_good()" on the last layer's one-query call, results/gpu/README.md); the flash and
        # memory-efficient kernels serve the same call, so leave cuDNN out of the choice, once per run.
        torch.backends.cuda.enable_cudnn_sdp(False)
    settings = member_list(cfg)
    seeds = [s for s, _, _ in settings]
    E = len(seeds)
    data = Data(cfg, seeds, device)
    model = build_model(cfg, seeds, device)
    model.train()
    lrs = torch.tensor([lr for _, lr, _ in settings], device=device)
    wds = torch.tensor([wd for _, _, wd in settings], device=device)
    bs = min(cfg.batch_size, data.n_train)
    n_steps = math.ceil(data.n_train / bs)
    horizon = cfg.max_epochs * n_steps      # steps a run can take: the device tables of the step cover them
    optimizers = build_optimizers(model, cfg.optimizer, lrs, wds, horizon=horizon)
    grad_filter = grokfast.build(model, cfg.get("grokfast"))        # None unless grokfast=ema
    train_gens = [member_generator(s, TRAIN) for s in seeds]                 # batch order (CPU)
    dropout_gens = dropout_source(cfg, seeds, device, train_gens)
    results = [MemberResult(seed=s, lr=lr, weight_decay=wd) for s, lr, wd in settings]
    step = 0
    groups = member_groups(E, bs, cfg, device, dropout_gens)
    alive = torch.ones(E, dtype=torch.bool, device=device)
    frozen = None                    # once a member diverged: every weight as it was then (see restore_frozen)
    gens = train_gens if dropout_gens is train_gens else train_gens + (
        [dropout_gens] if isinstance(dropout_gens, MaskStream) else dropout_gens)    # what a checkpoint saves

    def state(epoch: int) -> dict:
        return {"epoch": epoch, "step": step, "model": model.state_dict(),
                "optimizers": [o.state_dict() for o in optimizers], "generators": [g.get_state() for g in gens],
                "results": [asdict(r) for r in results], "alive": alive.cpu(),
                "frozen": None if frozen is None else [f.cpu() for f in frozen],
                **({"grokfast": grad_filter.state_dict()} if grad_filter is not None else {})}

    first = 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        for opt, saved in zip(optimizers, resume["optimizers"]):
            opt.load_state_dict(saved)
            for group in opt.param_groups:      # per-member lr / decay tensors were saved from the device
                group.update({k: v.to(device) for k, v in group.items() if torch.is_tensor(v)})
                if "base_lr" in group:          # saved before the warm-up moved into the step: lr held lr x factor
                    group["lr"] = group.pop("base_lr")
        for g, saved in zip(gens, resume["generators"]):
            g.set_state(saved)
        results = [MemberResult(**r) for r in resume["results"]]
        alive = resume["alive"].to(device)
        frozen = None if resume["frozen"] is None else [f.to(device) for f in resume["frozen"]]
        first, step = resume["epoch"] + 1, resume["step"]
        if grad_filter is not None and "grokfast" in resume:
            grad_filter.load_state_dict(resume["grokfast"])
    clock = Clock(cfg.optimizer.warmup_steps, horizon, device)
    clock.step.fill_(step)
    train_step = TrainStep(model, optimizers, data.inputs, data.labels, cfg.head.name, alive, dropout_gens, groups,
                           clock, torch.bfloat16 if cfg.precision == "bf16" else None, cfg.get("compile", "off"), phase,
                           grad_filter)
    for epoch in range(first, cfg.max_epochs + 1):
        order = torch.stack([torch.randperm(data.n_train, generator=g) for g in train_gens]).to(device)
        rows = data.train_rows.gather(1, order)                                 # [E, n_train]
        # The update's spectrum (probes.UpdateWatch) on the first step of a probe epoch (every
        # probe_every epochs and at the budget: a step's probe is chosen before the step), eager only.
        watch_update = (cfg.probes and cfg.probe_every and cfg.get("compile", "off") == "off"
                        and (epoch % cfg.probe_every == 0 or epoch == cfg.max_epochs))
        update_numbers = {}
        for i in range(n_steps):    # forward, loss, backward, update: grokmuon/step.py
            watch = probes.UpdateWatch(model) if watch_update and i == 0 else None
            train_step(rows[:, i * bs:(i + 1) * bs].contiguous())
            if frozen is not None:
                restore_frozen(model, alive, frozen)
            if watch is not None:
                update_numbers = watch.finish()
            step += 1
        with phase("evaluate"):
            if cfg.eval_train == "lazy":
                numbers, measured = evaluate_lazy(model, data, cfg, device, results, epoch)
            else:
                numbers, measured = evaluate(model, data, cfg, device), True
        finite = torch.isfinite(numbers["val_loss"]) & weights_finite(model)
        if measured:
            finite &= torch.isfinite(numbers["train_loss"])
        if cfg.probes:
            with phase("probes"):
                numbers.update(probes.weight_probes(model))
            numbers["lr_factor"] = torch.full((E,), lr_factor(step - 1, cfg.optimizer.warmup_steps))
        numbers = {k: v.tolist() for k, v in numbers.items()}                   # one host sync per epoch
        newly_diverged = False
        for e, r in enumerate(results):
            if r.status != "running":
                continue
            r.epochs_run = epoch
            r.final = {k: numbers[k][e] for k in ("train_acc", "val_acc", "train_loss", "val_loss")}
            if not bool(finite[e]):
                r.status, r.diverged_epoch = "diverged", epoch
                alive[e] = False
                newly_diverged = True
                continue
            r.memorisation_epoch, r.grokking_epoch = metrics.update(     # NaN train acc (lazy): neither
                r.memorisation_epoch, r.grokking_epoch, epoch, numbers["train_acc"][e], numbers["val_acc"][e],
                cfg.grok_val_acc, cfg.grok_train_acc)
        if newly_diverged:      # the weights diverged members keep from now on (earlier ones included)
            frozen = [p.detach().clone() for p in model.parameters()]
        done = [r.status == "diverged" or (r.grokking_epoch is not None and epoch >= r.grokking_epoch + cfg.patience)
                for r in results]
        raced = cfg.stop == "race" and (racing.decided(
            racing.by_config((r.lr, r.weight_decay, r.status, r.grokking_epoch) for r in results), epoch)
            or (cfg.race_stop_by is not None and epoch >= cfg.race_stop_by))
        if cfg.probes and cfg.probe_every and (epoch % cfg.probe_every == 0 or all(done) or raced
                                               or epoch == cfg.max_epochs):
            with phase("probes"):           # every probe_every epochs and at the run's last
                numbers.update({k: v.tolist() for k, v in fourier_numbers(model, data, cfg, device).items()})
        numbers.update({k: v.tolist() for k, v in update_numbers.items()})
        if on_epoch is not None:
            on_epoch(epoch, numbers, results)
        if saver is not None and saver.due(epoch) and epoch < cfg.max_epochs and not (all(done) or raced):
            saver.save(state(epoch))        # not on the epoch the run ends: end() would delete it at once
        if all(done):
            break
        if raced:
            for r in results:
                if r.status == "running" and r.grokking_epoch is None:
                    r.status = "raced_out"
            break
        if should_stop is not None and should_stop():
            if saver is not None:
                saver.save(state(epoch))            # before the statuses say interrupted
            for r in results:
                if r.status == "running":
                    r.status = "interrupted"
            return results
    for r in results:
        if r.status == "running":
            r.status = "grokked" if r.grokking_epoch is not None else "censored"
    if saver is not None:
        saver.end(model)
    return results

