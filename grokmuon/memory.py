"""Does an ensemble fit in the device's memory? Decided before training starts, so a run too large for
its GPU stops with one line naming the ensemble size that fits, never with an out-of-memory traceback
mid-run (and nothing is written). CPU runs are not checked: the host's memory is the operating system's.

The estimate is an upper bound in round numbers, not a measurement: per member, the weights and
everything shaped like them (weight, gradient, two optimizer moments, the copy kept once a member
diverged; with grokfast=ema its EMA too), the activations a training step keeps for its backward pass,
and the hashed dropout masks' int64 temporaries; plus a fixed part shared by the ensemble (the
evaluation's chunk of member-rows and the allocator's slack), and a tenth of the free memory left unplanned.
"""
from __future__ import annotations

from .config import ConfigError

FLOAT = 4                   # bytes: weights, gradients and activations are fp32 (bf16 autocast keeps fp32 copies)
WEIGHT_COPIES = 5           # weight, gradient, AdamW's two moments (Muon: one buffer), the diverged members' copy
HEADROOM = 0.9              # of the free memory: fragmentation and the CUDA context's own growth


def parameters_per_member(vocab: int, n_layers: int, d_model: int, d_mlp: int) -> int:
    """Weights of one member of model.EnsembleTransformer: embedding and head, per layer two norm gains,
    q, k, v, o and the gated MLP, and the final norm."""
    D, M = d_model, d_mlp
    return 2 * vocab * D + n_layers * (2 * D + 4 * D * D + 3 * D * M) + D


def bytes_per_member(vocab: int, seq_len: int, n_layers: int, d_model: int, n_heads: int, d_mlp: int,
                     batch: int) -> int:
    """Upper estimate of one member's training memory in bytes (see the module's note)."""
    D, M, T = d_model, d_mlp, seq_len
    weights = WEIGHT_COPIES * FLOAT * parameters_per_member(vocab, n_layers, D, M)
    # Kept for backward, per row, position and layer: residual, norms, q k v, rotated q k, attention
    # output and its projection, two dropout masks, the MLP's gate, up, product and output (~16 D + 4 M
    # floats), and the attention weights (H x T).
    activations = FLOAT * batch * T * n_layers * (16 * D + 4 * M + 2 * n_heads * T)
    masks = 4 * 8 * batch * T * D          # MaskStream: a few int64 temporaries of one dropout site
    return weights + activations + masks


def fixed_bytes(eval_member_rows: int, seq_len: int, d_model: int, d_mlp: int, vocab: int) -> int:
    """What the ensemble shares: one evaluation forward over eval_member_rows member-rows (no backward:
    a few activations alive at once) and the logits, plus 256 MiB for the CUDA context and allocator."""
    return FLOAT * eval_member_rows * (seq_len * (8 * d_model + 2 * d_mlp) + 2 * vocab) + (256 << 20)


def members_that_fit(per_member: int, fixed: int, free: int, headroom: float = HEADROOM) -> int:
    """How many members fit in `free` bytes: (headroom x free - fixed) // per_member, at least 0."""
    return max(0, int((headroom * free - fixed) // per_member))


def refusal(members: int, fit: int, per_member: int, free: int, device: str) -> str | None:
    """The one line that refuses an ensemble larger than `fit`, or None when it fits."""
    if members <= fit:
        return None
    if fit == 0:
        return (f"one member needs about {per_member / 2**30:.2f} GiB of {device}, which has "
                f"{free / 2**30:.1f} GiB free: use a smaller model or batch_size, or device=cpu")
    return (f"{members} members need about {members * per_member / 2**30:.1f} GiB of {device}, which has "
            f"{free / 2**30:.1f} GiB free: at most {fit} members fit; split the seeds (x grid) into runs of "
            f"{fit} or fewer")


def free_bytes(device) -> int:
    """Free memory of a CUDA device in bytes (the driver's count, other processes included)."""
    import torch
    return torch.cuda.mem_get_info(device)[0]


def check_fits(cfg, device) -> None:
    """Raise ConfigError (one line) if cfg's ensemble would not fit on `device` (a torch.device); CPUs pass."""
    if device.type != "cuda":
        return
    from .config import members
    from .tasks import vocab_size
    from .train import GPU_EVAL_CHUNK

    t, m = cfg.task, cfg.model
    seq = t.n_bits + 1 if t.name == "parity" else 4
    vocab = vocab_size(t.name, t.p)
    per = bytes_per_member(vocab, seq, m.n_layers, m.d_model, m.n_heads, m.d_mlp, cfg.batch_size)
    if (cfg.get("grokfast") or {}).get("name", "none") != "none":     # grokfast=ema: its EMA, one more copy
        per += FLOAT * parameters_per_member(vocab, m.n_layers, m.d_model, m.d_mlp)
    fixed = fixed_bytes(cfg.eval_chunk or GPU_EVAL_CHUNK, seq, m.d_model, m.d_mlp, vocab)
    free = free_bytes(device)
    line = refusal(len(members(cfg)), members_that_fit(per, fixed, free), per, free, str(device))
    if line:
        raise ConfigError(line)
