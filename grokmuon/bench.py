"""`grokmuon bench`: member-epochs per second, side by side in one process, with ratios to a plain loop.

(a) reference: the loop as peers write it (nn.Module with nn.Linear layers, DataLoader, torch.optim.AdamW,
    full-sequence forward, `.item()` every step, accuracy on the val set each epoch);
(b) our trainer with 1 member; (c) our trainer with ensembles (default 8 and 32 members).
Same task, model size, batch size and optimizer (AdamW, so the optimizers cost the same; a Muon row is
added for information). Also prints achieved model FLOP/s beside the measured matmul peak.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import Parser, fail
from .model import apply_rope, rope_tables
from .tasks import make_task, split_indices, vocab_size


# ----------------------------------------------------------------------------- (a) the peer-style loop
class RefBlock(nn.Module):
    def __init__(self, d, h, m, p, cos, sin):
        super().__init__()
        self.h, self.cos, self.sin = h, cos, sin
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


def reference_epochs(task, p, frac, shape, batch, epochs, device) -> float:
    """Seconds per epoch of the plain loop (after one warm-up epoch)."""
    from torch.utils.data import DataLoader, TensorDataset
    x, y = make_task(task, p)
    tr, va = split_indices(len(y), frac, 0)
    model = RefModel(vocab_size(task, p), x.shape[1], *shape).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=1.0)
    train_dl = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=batch, shuffle=True)
    val_dl = DataLoader(TensorDataset(x[va], y[va]), batch_size=batch)
    times = []
    for _ in range(epochs + 1):
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
    return sum(times[1:]) / epochs


# ----------------------------------------------------------------------------- (b), (c) our trainer
def ours_epochs(task, frac, model_overrides, batch, epochs, members, optimizer, precision, device,
                extra=(), checkpoint_every: int = 0) -> float:
    """Seconds per epoch of grokmuon.train.train with `members` seeds (after one warm-up epoch); extra:
    more overrides (probes=false); checkpoint_every: save the whole state that often (to a temp folder)."""
    import tempfile

    from .checkpoint import Saver
    from hydra import compose, initialize_config_dir

    from .job import register_configs  # noqa: F401 (the schema, as `grokmuon train` has it)
    from .config import CONF
    from .train import train

    overrides = [f"task={task}", f"task.train_frac={frac}", f"optimizer={optimizer}", "logger=none",
                 f"seeds={list(range(members))}".replace(" ", ""), f"batch_size={batch}", f"max_epochs={epochs + 1}",
                 f"precision={precision}", f"device={device}", "progress=false",
                 *(f"model.{k}={v}" for k, v in model_overrides.items()), *extra]
    with initialize_config_dir(str(CONF), version_base=None):
        cfg = compose("train", overrides=overrides)     # the real config, as `grokmuon train` composes it
    cfg.grok_val_acc = 2.0  # never "grokked": run every epoch  (validate() is not called here)
    stamps = []
    with tempfile.TemporaryDirectory() as folder:
        saver = Saver(folder, "bench", checkpoint_every, keep_weights=False) if checkpoint_every else None
        train(cfg, on_epoch=lambda epoch, numbers, results: stamps.append(time.perf_counter()), saver=saver)
    return (stamps[-1] - stamps[0]) / epochs


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
    ap.add_argument("--task", default="modadd")
    ap.add_argument("--train-frac", type=float, default=0.5, help="0.5: 4704 train rows on modadd")
    ap.add_argument("--members", type=sizes, default="1,8,32", help="ensemble sizes for our trainer, e.g. 1,8,32")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per row (after 1 warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved repeats; the fastest counts")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--peak-size", type=int, default=2048, help="n of the n x n matmul that measures the peak")
    ap.add_argument("--out", default="outputs/bench",
                    help="folder for the JSON record (default: %(default)s; results/bench holds the committed ones)")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        fail(f"--device {args.device} but this torch ({torch.__version__}) sees no CUDA GPU; use --device cpu")
    L, D, H, M = 2, 128, 4, 512
    p = 97
    x, y = make_task(args.task, p)
    n_all, seq, vocab = len(y), x.shape[1], vocab_size(args.task, p)
    n_train = int(math.floor(args.train_frac * n_all))
    rows = []

    def report(name, sec_per_epoch, members, flops):
        rows.append({"name": name, "members": members, "s_per_epoch": sec_per_epoch,
                     "member_epochs_per_s": members / sec_per_epoch, "gflops": flops * members / sec_per_epoch / 1e9})
        r = rows[-1]
        print(f"{name:32s} {members:3d} members  {sec_per_epoch:8.3f} s/epoch  {r['member_epochs_per_s']:7.3f} member-epochs/s"
              f"  {r['member_epochs_per_s'] / rows[0]['member_epochs_per_s']:6.2f}x  {r['gflops']:7.1f} GFLOP/s", flush=True)

    print(f"task {args.task}, {n_train} train rows, model {L}x{D} (heads {H}, MLP {M}), batch {args.batch}, "
          f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    ref_flops = model_flops_per_epoch(n_train, n_all, seq, L, D, M, vocab, last_only=False, eval_rows=n_all - n_train)
    our_flops = model_flops_per_epoch(n_train, n_all, seq, L, D, M, vocab)
    cases = [("(a) reference loop (AdamW)", 1, ref_flops,
              lambda: reference_epochs(args.task, p, args.train_frac, (L, D, H, M, 0.1), args.batch, args.epochs, args.device))]
    for e in args.members:
        cases.append((f"({'b' if e == 1 else 'c'}) grokmuon AdamW", e, our_flops,
                      lambda e=e: ours_epochs(args.task, args.train_frac, {}, args.batch, args.epochs, e, "adamw",
                                              args.precision, args.device)))
    cases.append(("    grokmuon Muon (info)", 1, our_flops,
                  lambda: ours_epochs(args.task, args.train_frac, {}, args.batch, args.epochs, 1, "muon",
                                      args.precision, args.device)))
    # What the probes and checkpoints cost: the same run as (b) without probes, and with a checkpoint
    # written every epoch (far more often than checkpoint_every would be set).
    cases.append(("    grokmuon AdamW, probes off", 1, our_flops,
                  lambda: ours_epochs(args.task, args.train_frac, {}, args.batch, args.epochs, 1, "adamw",
                                      args.precision, args.device, extra=("probes=false",))))
    cases.append(("    grokmuon AdamW, checkpoint/epoch", 1, our_flops,
                  lambda: ours_epochs(args.task, args.train_frac, {}, args.batch, args.epochs, 1, "adamw",
                                      args.precision, args.device, checkpoint_every=1)))
    # Every case runs once per round, rounds interleaved, and the fastest round counts: a burst of load
    # from another process then slows one round of every case, not one case.
    best = [float("inf")] * len(cases)
    for _ in range(args.rounds):
        for i, (_, _, _, run) in enumerate(cases):
            best[i] = min(best[i], run())
    for (name, members, flops, _), sec in zip(cases, best):
        report(name, sec, members, flops)
    by_name = {r["name"].strip(): r["s_per_epoch"] for r in rows}
    base = by_name.get("(b) grokmuon AdamW")
    if base:
        print(f"probes cost {100 * (base - by_name['grokmuon AdamW, probes off']) / base:+.1f}% of an epoch; a checkpoint "
              f"every epoch {100 * (by_name['grokmuon AdamW, checkpoint/epoch'] - base) / base:+.1f}% "
              "(differences of the fastest rounds; within noise when small)")
    peaks = {str(dt).split(".")[1]: matmul_peak(dt, args.device, args.peak_size) / 1e9 for dt in (torch.float32, torch.bfloat16)}
    print(f"matmul peak ({args.peak_size}^2): " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"command": "grokmuon bench " + " ".join(argv), "machine": platform.processor() or platform.machine(),
              "device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "task": args.task, "train_rows": n_train, "rows": rows, "matmul_peak_gflops": peaks,
              "date": time.strftime("%Y-%m-%d %H:%M")}
    name = f"bench-{args.device.split(':')[0]}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    (out / name).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out / name}")


if __name__ == "__main__":
    main(sys.argv[1:])
