"""Does torch.compile pay on this machine? Times one training step (forward, loss, backward, AdamW) of
the trainer's own model, eager against torch.compile, and says after how many steps the compile time is
paid back. Prints only; nothing is written.

    OMP_NUM_THREADS=1 python scripts/compile_trial.py --model small --members 1,5 --steps 60

A run of experiment=cpu is 10 steps an epoch for 20-300 epochs (200-3000 steps); compile must pay back
well inside that to be worth a default (docs/speed.md).
"""
from __future__ import annotations

import argparse
import time

import torch

from grokmuon.bench import compose_train
from grokmuon.heads import row_losses
from grokmuon.train import Data, build_model, member_generator, TRAIN


def step_time(model, data, gens, steps: int, batch: int) -> tuple[float, float]:
    """(seconds of the first step, mean seconds of the next `steps`) of forward+loss+backward+AdamW."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0)
    rows = data.train_rows[:, :batch]
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        logits = model(data.inputs[rows], gens)
        loss = row_losses("softmax", logits.float(), data.labels[rows]).mean(1).sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return times[0], sum(times[1:]) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="small")
    ap.add_argument("--members", default="1,5")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--modes", default="default,max-autotune-no-cudagraphs")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, model {args.model}, batch {args.batch}")
    for E in (int(e) for e in args.members.split(",")):
        cfg = compose_train([f"model={args.model}", "task=modadd", f"seeds={list(range(E))}".replace(" ", "")])
        seeds = list(range(E))
        data = Data(cfg, seeds, torch.device("cpu"))
        gens = [member_generator(s, TRAIN) for s in seeds]
        _, eager = step_time(build_model(cfg, seeds, torch.device("cpu")), data, gens, args.steps, args.batch)
        print(f"E={E}: eager {1e3 * eager:7.2f} ms/step")
        for mode in args.modes.split(","):
            torch._dynamo.reset()
            model = torch.compile(build_model(cfg, seeds, torch.device("cpu")), mode=mode)
            try:
                first, fast = step_time(model, data, gens, args.steps, args.batch)
            except Exception as err:  # noqa: BLE001 (a backend that fails here is a result too)
                print(f"  compile mode={mode}: failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
                continue
            gain = eager - fast
            pays = f"pays back after {(first - fast) / gain:,.0f} steps" if gain > 0 else "never pays back"
            print(f"  compile mode={mode}: first step {first:6.1f} s, then {1e3 * fast:7.2f} ms/step "
                  f"({eager / fast:.2f}x eager); {pays}")


if __name__ == "__main__":
    main()
