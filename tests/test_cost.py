"""grokmuon.cost: model FLOPs counted by hand on a tiny shape, and against the benchmark's own count."""
import pytest

from grokmuon import bench, cost, tasks


def test_forward_flops_by_hand_on_a_tiny_shape():
    # 2 blocks, d = 2, m = 4, T = 4 tokens, vocab 5. Per token of a block: q, k, v, o 4 d^2 = 16 and the
    # MLP 3 d m = 24 multiply-adds: 80 FLOPs. Attention per query: 2 T d = 16 multiply-adds: 32 FLOPs.
    # Block 1 (every position): 4 x (80 + 32) = 448. Block 2: k, v at 4 positions 4 x 2 x 2 d^2 = 64, then
    # q, o and the MLP at "=": 2 x (2 d^2 + 3 d m) = 64, attention 32: 160. Head 2 x d x vocab = 20.
    assert cost.forward_flops(seq=4, layers=2, d=2, m=4, vocab=5) == 448 + 160 + 20


def test_newton_schulz_flops_by_hand():
    # X [2, 3]: X X^T 2*2*2*3 = 24, A A 2*2^3 = 16, B X 24: 64 a step; the tall [3, 2] is transposed first.
    assert cost.newton_schulz_flops(2, 3, steps=1) == 64
    assert cost.newton_schulz_flops(3, 2, steps=5) == 5 * 64
    # One block with d = 2, m = 3: q, k, v, o [2, 2] (16 + 16 + 16 = 48 each), w1, w3 [3, 2] and w2 [2, 3] (64 each).
    square = 2 * 4 * 2 + 2 * 8 + 2 * 4 * 2
    assert cost.muon_step_flops(layers=1, d=2, m=3, steps=1) == 4 * square + 3 * 64


def test_epoch_flops_counts_training_evaluation_and_muon_steps():
    # fwd 10, 7 train rows at batch 3 (3 optimizer steps), 5 evaluated rows, 100 Newton-Schulz FLOPs a step.
    assert cost.epoch_flops(10, n_train=7, eval_rows=5, batch=3, ns_per_step=100) == 3 * 10 * 7 + 10 * 5 + 3 * 100
    assert cost.epoch_flops(10, n_train=7, eval_rows=5, batch=512) == 210 + 50     # full batch: one step, AdamW


@pytest.mark.parametrize("task", ["modadd", "moddiv", "parity"])
def test_rows_and_vocab_match_the_tasks(task):
    inputs, _ = tasks.make_task(task, p=7, n_bits=4)
    assert cost.task_rows(task, p=7, n_bits=4) == tuple(inputs.shape)
    assert cost.vocab(task, p=7) == tasks.vocab_size(task, p=7)


def test_the_model_count_agrees_with_the_benchmarks():
    # bench.model_flops_per_epoch was written apart from cost.py, for the GFLOP/s of `grokmuon bench`.
    fwd = cost.forward_flops(seq=4, layers=2, d=64, m=256, vocab=99)
    assert 3 * fwd * 4704 + fwd * 9409 == bench.model_flops_per_epoch(4704, 9409, 4, 2, 64, 256, 99)


def test_member_flops_accumulates_and_leaves_out_unmeasured_train_epochs():
    # modadd, p = 5: 25 rows, train_frac 0.5 -> 12 train rows, 13 val; batch 4 -> 3 steps an epoch.
    fwd = cost.forward_flops(4, 1, 2, 4, 7)
    ns = cost.muon_step_flops(1, 2, 4, 5)
    full, val_only = 36 * fwd + 25 * fwd + 3 * ns, 36 * fwd + 13 * fwd + 3 * ns
    got = cost.member_flops("modadd", 5, 10, 0.5, 1, 2, 4, 4, 5, [True, False, True])
    assert got == [full, full + val_only, 2 * full + val_only]
    assert cost.member_flops("modadd", 5, 10, 0.5, 1, 2, 4, 4, None, [True])[0] == 61 * fwd


def test_split_all_adds_the_embedding_and_the_head_by_hand():
    # d = 2, m = 3, vocab 5, one step. Hidden: 4 x 48 + 3 x 64 = 384 (above). Embedding and head [5, 2]:
    # transposed to [2, 5]: X X^T 2*2*2*5 = 40, A A 2*2^3 = 16, B X 40: 96 each.
    assert cost.muon_step_flops(layers=1, d=2, m=3, steps=1, vocab=5) == 384 + 2 * 96
    fwd = cost.forward_flops(4, 1, 2, 3, 7)          # modadd p = 5: vocab 7; [7, 2] -> [2, 7]: 56 + 16 + 56
    got = cost.member_flops("modadd", 5, 10, 0.5, 1, 2, 3, 4, 1, [True], split="all")
    assert got == [61 * fwd + 3 * (384 + 2 * 128)]


def test_no_newton_schulz_flops_at_zero_steps():
    fwd = cost.forward_flops(4, 1, 2, 4, 7)
    assert cost.member_flops("modadd", 5, 10, 0.5, 1, 2, 4, 4, 0, [True]) == [61 * fwd]
    assert cost.member_flops("modadd", 5, 10, 0.5, 1, 2, 4, 4, 0, [True], split="all") == [61 * fwd]


def test_the_registry_says_which_optimizers_orthogonalise_without_importing_them():
    import subprocess
    import sys
    code = ("import sys; from grokmuon.optimizers import names, orthogonalises; "
            "print([n for n in names() if orthogonalises(n)], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("]")
    assert out[0] + "]" == "['muon', 'normuon'" + "]" and out[1].strip() == "False"
    from grokmuon import optimizers
    for name in optimizers.names():       # the literal read from the source is the module's own attribute
        assert optimizers.orthogonalises(name) == getattr(optimizers.get(name), "ORTHOGONALISES", False)
    assert not optimizers.orthogonalises("nosuch")
