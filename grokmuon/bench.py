"""`grokmuon bench`: member-epochs per second, side by side in one process, with ratios to a plain loop.

Per model of the config (--models, default: default and small, shapes from conf/model/):
(a) reference: the loop as peers write it (nn.Module with nn.Linear layers, DataLoader, torch.optim.AdamW,
    full-sequence forward, `.item()` every step, accuracy on the val set each epoch);
(b) our trainer with 1 member; (c) our trainer with ensembles (default 3, 8 and 32 members);
then, at 1 member, for information: Muon (its Newton-Schulz cost is the difference to (b); --arms: any
arms of a tune plan, e.g. muon,normuon,adamw_grokfast from conf/tune_arms.yaml), the delay
phase with eval_train=lazy (train split skipped), probes off, a checkpoint every epoch; and at the largest
ensemble size the compiled step (compile=step) beside its eager twin (hashed masks, which it needs).
Every row also counts what the host dispatches per member-epoch (torch.profiler, one more epoch): aten
ops and compiled kernels, and on CUDA the kernel launches; launches are what the GPU waits on.
Same task, model size, batch size and optimizer (AdamW, so the optimizers cost the same). Also prints
achieved model FLOP/s beside the measured matmul peak. --profile adds where an epoch's time goes
(torch.profiler: the trainer's phases and the costliest operators).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import CONF, Parser, fail
from .model import apply_rope, rope_tables
from .tasks import TASKS, make_task, split_indices, vocab_size


# ----------------------------------------------------------------------------- (a) the peer-style loop
class RefBlock(nn.Module):
    def __init__(self, d, h, m, p, cos, sin):
        super().__init__()
        self.h = h
        self.register_buffer("cos", cos, persistent=False)   # buffers: .to(device) moves them with the weights
        self.register_buffer("sin", sin, persistent=False)
        self.n1, self.n2 = nn.RMSNorm(d, eps=1e-5), nn.RMSNorm(d, eps=1e-5)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.w1, self.w3, self.w2 = nn.Linear(d, m, bias=False), nn.Linear(d, m, bias=False), nn.Linear(m, d, bias=False)
        self.drop = nn.Dropout(p)

    def forward(self, x):
        B, T, D = x.shape
        a = self.n1(x)
        q, k, v = (f(a).view(B, T, self.h, D // self.h).transpose(1, 2) for f in (self.q, self.k, self.v))
        q, k = apply_rope(q, self.cos[:T], self.sin[:T]), apply_rope(k, self.cos[:T], self.sin[:T])
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, D)
        x = x + self.drop(self.o(att))
        a = self.n2(x)
        return x + self.drop(self.w2(F.silu(self.w1(a)) * self.w3(a)))


class RefModel(nn.Module):
    def __init__(self, vocab, seq_len, layers, d, h, m, p):
        super().__init__()
        cos, sin = rope_tables(seq_len, d // h, 10000.0)
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(RefBlock(d, h, m, p, cos, sin) for _ in range(layers))
        self.norm, self.out = nn.RMSNorm(d, eps=1e-5), nn.Linear(d, vocab, bias=False)

    def forward(self, x):
        x = self.emb(x)
        for b in self.blocks:
            x = b(x)
        return self.out(self.norm(x)[:, -1])


def reference_epochs(task, p, frac, shape, batch, epochs, device, profiler=None) -> float:
    """Seconds per epoch of the plain loop (after one warm-up epoch); profiler: entered around the timed
    epochs."""
    import contextlib
    from torch.utils.data import DataLoader, TensorDataset
    x, y = make_task(task, p)
    tr, va = split_indices(len(y), frac, 0)
    model = RefModel(vocab_size(task, p), x.shape[1], *shape).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=1.0)
    train_dl = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=batch, shuffle=True)
    val_dl = DataLoader(TensorDataset(x[va], y[va]), batch_size=batch)
    times = []
    stack = contextlib.ExitStack()
    for i in range(epochs + 1):
        if i == 1 and profiler is not None:
            stack.enter_context(profiler)
        t0 = time.perf_counter()
        model.train()
        correct = 0
        for xb, yb in train_dl:
            xb, yb = xb.to(device), yb.to(device)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            _ = loss.item()
            correct += (logits.argmax(-1) == yb).sum().item()
        model.eval()
        with torch.no_grad():
            val_correct = sum((model(xb.to(device)).argmax(-1) == yb.to(device)).sum().item() for xb, yb in val_dl)
        times.append(time.perf_counter() - t0)
    stack.close()
    return sum(times[1:]) / epochs


# ----------------------------------------------------------------------------- (b), (c) our trainer
def compose_train(overrides: list[str]):
    """The config `grokmuon train <overrides>` runs (validate() is not called: bench bends thresholds)."""
    from hydra import compose, initialize_config_dir

    from .job import register_configs  # noqa: F401 (the schema, as `grokmuon train` has it)
    with initialize_config_dir(str(CONF), version_base=None):
        return compose("train", overrides=overrides)


def model_shape(name: str) -> tuple[int, int, int, int, float]:
    """(layers, width, heads, MLP width, dropout) of conf/model/<name>.yaml, as train builds it."""
    m = compose_train([f"model={name}"]).model
    return m.n_layers, m.d_model, m.n_heads, m.d_mlp, m.dropout


@dataclass
class Case:
    """One row of the table: the reference loop or our trainer with these options (ours_epochs)."""
    model: str
    name: str
    members: int = 1
    reference: bool = False
    options: dict = field(default_factory=dict)

    @property
    def lazy(self) -> bool:     # the train split is not evaluated: fewer FLOPs an epoch
        return "eval_train=lazy" in self.options.get("extra", ())


ARMS = {"muon": ("muon", ())}      # the arms timed beside AdamW by default: (optimizer, other overrides)


def arm_row(name: str) -> str:
    """A row's name for an arm: Muon's as it always was, any other by its arm's name."""
    return "grokmuon Muon" if name == "muon" else f"grokmuon {name}"


def plan(models: list[str], members: list[int], compiled: bool = True, arms: dict | None = None) -> list[Case]:
    """The rows, per model: (a) the reference; (b), (c) ours with AdamW at each ensemble size; then at
    one member: each arm (default: Muon), the delay phase (every member memorised, none grokked: where eval_train=lazy
    skips the train split) without and with lazy, no probes, and a checkpoint every epoch; compiled: the
    compiled step and its eager twin at the largest ensemble size."""
    cases = []
    for m in models:
        cases.append(Case(m, "(a) reference loop (AdamW)", reference=True))
        cases += [Case(m, f"({'b' if e == 1 else 'c'}) grokmuon AdamW", e, options={"optimizer": "adamw"}) for e in members]
        cases += [Case(m, f"    {arm_row(a)}", options={"optimizer": o, **({"extra": extra} if extra else {})})
                  for a, (o, extra) in (ARMS if arms is None else arms).items()]
        cases += [Case(m, "    delay phase, eval_train=every", options={"delay_phase": True}),
                  Case(m, "    delay phase, eval_train=lazy", options={"delay_phase": True, "extra": ("eval_train=lazy",)}),
                  Case(m, "    grokmuon AdamW, probes off", options={"extra": ("probes=false",)}),
                  Case(m, "    grokmuon AdamW, checkpoint/epoch", options={"checkpoint_every": 1})]
        if compiled:
            cases += [Case(m, "    grokmuon AdamW, hash masks", max(members), options={"extra": ("dropout_masks=hash",)}),
                      Case(m, "    grokmuon AdamW, compile=step", max(members), options={"extra": ("compile=step",)})]
    return cases


def ours_epochs(task, frac, model, batch, epochs, members, optimizer="adamw", precision="fp32", device="cpu",
                extra=(), checkpoint_every: int = 0, delay_phase: bool = False, profiler=None) -> float:
    """Seconds per epoch of grokmuon.train.train with `members` seeds (after one warm-up epoch); extra:
    more overrides (probes=false); checkpoint_every: save the whole state that often (to a temp folder);
    delay_phase: every member counts as memorised from epoch 1 (what eval_train=lazy skips then);
    profiler: a torch.profiler.profile entered around the timed epochs."""
    import contextlib
    import tempfile

    from .checkpoint import Saver
    from .train import train

    overrides = [f"task={task}", f"task.train_frac={frac}", f"optimizer={optimizer}", f"model={model}", "logger=none",
                 f"seeds={list(range(members))}".replace(" ", ""), f"batch_size={batch}", f"max_epochs={epochs + 2}",
                 f"precision={precision}", f"device={device}", "progress=false", "eval_train_every=100000", *extra]
    cfg = compose_train(overrides)
    cfg.grok_val_acc = 2.0  # never "grokked": run every epoch
    if delay_phase:
        cfg.grok_train_acc = 0.0
    stamps = []
    with contextlib.ExitStack() as stack, contextlib.ExitStack() as profiling:
        def on_epoch(epoch, numbers, results):
            stamps.append(time.perf_counter())
            if epoch == 1 and profiler is not None:        # after the warm-up epoch
                profiling.enter_context(profiler)
            if epoch == epochs + 1 and profiler is not None:
                profiling.close()
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        saver = Saver(folder, "bench", checkpoint_every, keep_weights=False) if checkpoint_every else None
        train(cfg, on_epoch=on_epoch, saver=saver)
    # epochs 2..epochs+1 are timed; the last (the budget) always measures the train split, so it is not
    return (stamps[epochs] - stamps[0]) / epochs


LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaGraphLaunch")


def dispatch_counts(names_counts, epochs: int, members: int) -> dict:
    """What the host dispatched per member-epoch, from (event name, count) pairs of a profile over
    `epochs` epochs: ops (aten operators, nested ones included, plus compiled kernels: inductor's C++
    kernels `..cpp_fused..`, profiled with cpp.enable_kernel_profile) and launches (CUDA kernel and graph launches;
    0 on a CPU)."""
    ops = sum(n for name, n in names_counts if name.startswith("aten::") or "cpp_fused" in name)
    launches = sum(n for name, n in names_counts if name in LAUNCHES)
    return {"ops_per_member_epoch": ops / epochs / members, "launches_per_member_epoch": launches / epochs / members}


def count_dispatches(case: "Case", task, p, frac, batch, precision, device) -> dict:
    """dispatch_counts of one epoch of a case (after its warm-up epoch), under torch.profiler."""
    import torch._inductor.config  # noqa: F401 (the patch below)
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    prof = profile(activities=activities)
    with torch._inductor.config.patch({"cpp.enable_kernel_profile": True}):   # compiled kernels show up
        if case.reference:
            reference_epochs(task, p, frac, model_shape(case.model), batch, 1, device, profiler=prof)
        else:
            ours_epochs(task, frac, case.model, batch, 1, case.members, precision=precision, device=device,
                        profiler=prof, **case.options)
    return dispatch_counts([(e.key, e.count) for e in prof.key_averages()], 1, case.members)


PHASES = ("forward", "backward", "optimizer", "evaluate", "probes")


def profile_epoch(task, frac, model, batch, epochs, optimizer, precision, device, top: int = 12, extra=(),
                  arm: str | None = None) -> dict:
    """Where one member's epoch goes: the trainer's phases (train.phase) and the costliest operators by
    their own time, from torch.profiler over `epochs` epochs after a warm-up. Seconds per epoch."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU])
    total = ours_epochs(task, frac, model, batch, epochs, 1, optimizer, precision, device, extra=extra, profiler=prof)
    events = prof.key_averages()
    phases = {e.key.split(".", 1)[1]: e.cpu_time_total / 1e6 / epochs for e in events if e.key.startswith("grokmuon.")}
    ops = sorted((e for e in events if not e.key.startswith("grokmuon.")), key=lambda e: -e.self_cpu_time_total)[:top]
    return {"model": model, "optimizer": optimizer, "arm": arm or optimizer, "s_per_epoch_profiled": total,
            "phases": {k: phases.get(k, 0.0) for k in PHASES},
            "ops": [{"op": e.key, "self_s_per_epoch": e.self_cpu_time_total / 1e6 / epochs, "calls": e.count // epochs}
                    for e in ops]}


def print_profile(p: dict) -> None:
    total = p["s_per_epoch_profiled"]
    print(f"profile: model {p['model']}, {p.get('arm', p['optimizer'])}, 1 member: {total:.3f} s/epoch under the profiler")
    rest = total - sum(p["phases"].values())
    for name, sec in [*p["phases"].items(), ("rest (batching, lr, host)", rest)]:
        print(f"  {name:28s} {sec:7.3f} s  {100 * sec / total:5.1f}%")
    print("  costliest operators (own time per epoch, calls per epoch):")
    for o in p["ops"]:
        print(f"    {o['op'][:40]:40s} {o['self_s_per_epoch']:7.3f} s  {100 * o['self_s_per_epoch'] / total:5.1f}%  {o['calls']:6d}")


# ----------------------------------------------------------------------------- FLOPs and peaks
def model_flops_per_epoch(n_train, n_all, seq, layers, d, m, vocab, last_only=True, eval_rows=None) -> float:
    """Matmul FLOPs of one epoch: fwd+bwd (3x fwd) on the train rows, fwd on the eval rows."""
    per_tok = 2 * (4 * d * d + 3 * d * m)                       # q, k, v, o and the gated MLP
    att = 2 * 2 * seq * d                                      # scores and weighted sum, per query
    full = layers * seq * (per_tok + att)
    if last_only:   # last block: k, v at every position; q, o, MLP, attention for "=" only
        full = (layers - 1) * seq * (per_tok + att) + seq * 2 * 2 * d * d + 2 * (2 * d * d + 3 * d * m) + att
    fwd = full + 2 * d * vocab
    return 3 * fwd * n_train + fwd * (n_all if eval_rows is None else eval_rows)


def matmul_peak(dtype: torch.dtype, device: str, n: int = 2048, seconds: float = 1.0) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    (a @ a)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or reps < 2:
        a @ a
        reps += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def sizes(text: str) -> list[int]:
    """--members: comma-separated positive ensemble sizes."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of ensemble sizes, e.g. 1,8,32") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive ensemble sizes, e.g. 1,8,32")
    return values


def main(argv: list[str]) -> None:
    ap = Parser(prog="grokmuon bench", description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="modadd", choices=list(TASKS),
                    help="the task whose data is timed (default: %(default)s)")
    ap.add_argument("--train-frac", type=float, default=0.5, help="share of the rows used for training (default: %(default)s; 0.5: 4704 train rows on modadd)")
    ap.add_argument("--models", default="default,small", help="model configs to time, comma-separated (default: %(default)s)")
    ap.add_argument("--members", type=sizes, default="1,3,8,32", help="ensemble sizes for our trainer, comma-separated (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per row, after 1 warm-up (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved repeats; the fastest counts (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=512, help="training batch size (default: %(default)s, as train)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu, cuda or cuda:N (default: cuda when torch sees a GPU, else cpu)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                    help="bf16: autocast for the forward pass (default: %(default)s)")
    ap.add_argument("--arms", default=None,
                    help="arms of --plan timed at 1 member beside AdamW (and profiled with --profile), comma-separated "
                         "(default: muon)")
    ap.add_argument("--plan", type=Path, default=CONF / "tune_arms.yaml",
                    help="the tune plan whose arms --arms names (default: %(default)s)")
    ap.add_argument("--profile", action="store_true", help="also: where an epoch goes (phases, operators)")
    ap.add_argument("--compile", choices=["on", "off"], default="on",
                    help="time the compiled step (compile=step) too; its first epoch compiles (minutes on a CPU)")
    ap.add_argument("--peak-size", type=int, default=2048, help="n of the n x n matmul that measures the peak (default: %(default)s)")
    ap.add_argument("--out", default="outputs/bench",
                    help="folder for the JSON record (default: %(default)s; results/bench holds the committed ones)")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        fail(f"--device {args.device} but this torch ({torch.__version__}) sees no CUDA GPU; use --device cpu")
    known = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or any(m not in known for m in models):
        fail(f"--models {args.models!r}: give model configs from {', '.join(known)}, e.g. default,small")
    arms = ARMS if args.arms is None else plan_arms(args.plan, [a for a in args.arms.split(",") if a])
    p = 97
    x, y = make_task(args.task, p)
    n_all, seq, vocab = len(y), x.shape[1], vocab_size(args.task, p)
    n_train = int(math.floor(args.train_frac * n_all))
    rows, profiles = [], []
    print(f"task {args.task}, {n_train} train rows, batch {args.batch}, device {args.device}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    cases = plan(models, args.members, args.compile == "on", arms)
    # Every case runs once per round, rounds interleaved, and the fastest round counts: a burst of load
    # from another process then slows one round of every case, not one case.
    best = [float("inf")] * len(cases)
    for _ in range(args.rounds):
        for i, c in enumerate(cases):
            if c.reference:
                sec = reference_epochs(args.task, p, args.train_frac, model_shape(c.model), args.batch, args.epochs,
                                       args.device)
            else:
                sec = ours_epochs(args.task, args.train_frac, c.model, args.batch, args.epochs, c.members,
                                  precision=args.precision, device=args.device, **c.options)
            best[i] = min(best[i], sec)
    counts = [count_dispatches(c, args.task, p, args.train_frac, args.batch, args.precision, args.device) for c in cases]
    for model in models:
        L, D, H, M, _ = model_shape(model)
        print(f"model {model} {L}x{D} (heads {H}, MLP {M}: conf/model/{model}.yaml)")
        mine = [(c, sec, n) for c, sec, n in zip(cases, best, counts) if c.model == model]
        base = mine[0][1]
        for c, sec, n in mine:
            name, members = c.name, c.members
            flops = model_flops_per_epoch(n_train, n_all, seq, L, D, M, vocab, last_only=not c.reference,
                                          eval_rows=n_all - n_train if c.reference or c.lazy else None)
            rows.append({"model": model, "name": name.strip(), "members": members, "s_per_epoch": sec,
                         "member_epochs_per_s": members / sec, "ratio": base / (sec / members),
                         "gflops": flops * members / sec / 1e9, **n})
            r = rows[-1]
            print(f"  {name:36s} {members:3d} members  {sec:8.3f} s/epoch  {r['member_epochs_per_s']:7.3f} member-epochs/s"
                  f"  {r['ratio']:6.2f}x  {r['gflops']:7.1f} GFLOP/s  {n['ops_per_member_epoch']:8.0f} ops"
                  + (f" {n['launches_per_member_epoch']:7.0f} launches" if args.device.startswith("cuda") else "")
                  + " /member-epoch", flush=True)
        by = {r["name"]: r["s_per_epoch"] for r in rows if r["model"] == model}
        b = by["(b) grokmuon AdamW"]
        for a in arms:
            if a != "muon":
                print(f"  {a}: {by[arm_row(a)] - b:+.3f} s/epoch over AdamW ({100 * (by[arm_row(a)] - b) / b:+.0f}%)")
        muon = (f"Muon's Newton-Schulz and its AdamW part: {by['grokmuon Muon'] - b:+.3f} s/epoch over AdamW "
                f"({100 * (by['grokmuon Muon'] - b) / b:+.0f}%); " if "muon" in arms else "")
        print(f"  {muon}lazy train evaluation in the delay phase "
              f"{100 * (by['delay phase, eval_train=lazy'] - by['delay phase, eval_train=every']) / by['delay phase, eval_train=every']:+.0f}%"
              f"; probes {100 * (b - by['grokmuon AdamW, probes off']) / b:+.1f}%; a checkpoint every epoch "
              f"{100 * (by['grokmuon AdamW, checkpoint/epoch'] - b) / b:+.1f}% (fastest rounds; noise when small)")
        if "grokmuon AdamW, compile=step" in by:
            eager, comp = (next(r for r in rows if r["model"] == model and r["name"] == k)
                           for k in ("grokmuon AdamW, hash masks", "grokmuon AdamW, compile=step"))
            print(f"  compile=step against eager at {comp['members']} members: {eager['s_per_epoch'] / comp['s_per_epoch']:.2f}x "
                  f"the speed, {comp['ops_per_member_epoch'] / eager['ops_per_member_epoch']:.2f}x the ops"
                  + (f", {comp['launches_per_member_epoch'] / max(eager['launches_per_member_epoch'], 1):.2f}x the launches"
                     if args.device.startswith("cuda") else ""))
    if args.profile:
        for arm, (optimizer, extra) in {"adamw": ("adamw", ()), **arms}.items():
            profiles.append(profile_epoch(args.task, args.train_frac, models[0], args.batch, args.epochs, optimizer,
                                          args.precision, args.device, extra=extra, arm=arm))
            print_profile(profiles[-1])
    peaks = {str(dt).split(".")[1]: matmul_peak(dt, args.device, args.peak_size) / 1e9 for dt in (torch.float32, torch.bfloat16)}
    print(f"matmul peak ({args.peak_size}^2): " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"command": "grokmuon bench " + " ".join(argv), "machine": platform.processor() or platform.machine(),
              "cpu_flags": cpu_flags(), "device": args.device, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "task": args.task, "train_rows": n_train, "rows": rows,
              "profiles": profiles, "matmul_peak_gflops": peaks, "date": time.strftime("%Y-%m-%d %H:%M")}
    name = f"bench-{args.device.split(':')[0]}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    (out / name).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out / name}")


def plan_arms(path: Path, names: list[str]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """{arm: (its optimizer, its other overrides)} for the named arms of a tune plan (grokmuon/tune.py)."""
    from . import tune
    arms = tune.load_plan(path)["arms"]
    unknown = [n for n in names if n not in arms]
    if not names or unknown:
        fail(f"--arms {','.join(names)!r}: give arms of {path}: {', '.join(arms)}")
    return {n: (tune.arm_optimizer({"arms": arms}, n),
                tuple(o for o in arms[n] if o.split("=", 1)[0] != "optimizer")) for n in names}


def cpu_flags() -> list[str]:
    """The vector units that decide matmul speed here (AVX2, AVX-512, bf16, AMX), from /proc/cpuinfo."""
    try:
        flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in set(flags) if f.startswith(("avx2", "avx512f", "avx512_bf16", "amx")))


if __name__ == "__main__":
    main(sys.argv[1:])
