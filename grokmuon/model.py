"""A small decoder-only transformer whose every weight carries a leading member axis [E, ...].

E independent models train in one process: the forward pass is batched matmuls over the member axis,
so member e sees only its own weights, inputs and dropout masks. A solo run is E = 1.
Layout per block (pre-norm, as [T]/[M]): x + Attn(RMSNorm x), then x + MLP(RMSNorm x); MLP is
SiLU-gated (w2(silu(w1 x) * w3 x)); all linears are bias-free and stored [E, out, in] like nn.Linear.
Only the "=" (last) position reaches the head, so the last block computes its query, attention output
and MLP for that position alone: the same logits as the full computation, with less work.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelShape:
    vocab: int
    seq_len: int
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    dropout: float = 0.1
    rope_base: float = 10000.0
    norm_eps: float = 1e-5


def rope_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [T, head_dim] for rotate-half RoPE: pair (i, i + head_dim/2) turns by pos * base^(-2i/d)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(seq_len, dtype=torch.float64)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [..., T, head_dim] by its position: x*cos + rotate_half(x)*sin."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


# ----------------------------------------------------------------------------- batched dropout masks
# Member-private masks from a per-member generator cost E bernoulli launches per dropout site per step: on
# a GPU with E = 128 that is hundreds of tiny kernels a step. MaskStream draws every member's mask at once
# from a counter-based hash of (member seed, call number, element index): member e's masks still depend
# on its seed alone (not on E, not on the other members), so a member still equals its solo run.
M32 = 0xFFFFFFFF


def mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2^32 for int64 x in [0, 2^32) without int64 overflow (16-bit halves)."""
    return ((x & 0xFFFF) * c + (((x >> 16) * (c & 0xFFFF)) << 16)) & M32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (Wellons' lowbias32) of int64 x in [0, 2^32): near-uniform, avalanching bits."""
    x = x ^ (x >> 16)
    x = mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


class MaskStream:
    """Dropout keep-masks for all members in one draw; like a generator, it has a state (the call count)
    that a checkpoint saves (get_state / set_state).

    The call count is a device tensor counted up in place, never a Python number: a compiled step would
    bake a Python number in as a constant (and recompile every call), and a replayed CUDA graph would
    reuse a stale one. So the masks are drawn inside a compiled or captured step, fresh on every call."""

    def __init__(self, seeds: list[int], device: torch.device | str = "cpu"):
        self.keys = mix32(torch.tensor(seeds, dtype=torch.int64, device=device) & M32)   # [E]
        self.calls = torch.zeros((), dtype=torch.int64, device=device)

    def keep(self, shape: torch.Size, p: float) -> torch.Tensor:
        """[E, *shape] bools, each True with probability 1 - p, member e's from its seed and this call."""
        n = math.prod(shape)
        call = mix32(self.calls & M32)
        self.calls.add_(1)
        base = mix32(self.keys ^ call)                                               # [E]
        idx = torch.arange(n, dtype=torch.int64, device=self.keys.device)
        u = mix32(base[:, None] ^ idx[None, :])                                      # [E, n] in [0, 2^32)
        return (u >= int(p * 2 ** 32)).view(len(self.keys), *shape)

    def get_state(self) -> torch.Tensor:
        return self.calls.detach().cpu().reshape(1).clone()

    def set_state(self, state: torch.Tensor) -> None:
        self.calls.fill_(int(state[0]))        # in place: a compiled step holds this very tensor


class EnsembleTransformer(nn.Module):
    def __init__(self, shape: ModelShape, init_gens: list[torch.Generator]):
        super().__init__()
        self.shape = s = shape
        E, D, M, V = len(init_gens), s.d_model, s.d_mlp, s.vocab
        assert D % s.n_heads == 0, "d_model must divide into heads"
        self.n_members = E
        # Inits follow PyTorch's module defaults, as the cited code uses them: nn.Embedding N(0, 1),
        # nn.Linear U(-1/sqrt(in), 1/sqrt(in)), norm gains 1. Drawn member by member in a fixed order,
        # so member e is the same whatever E is.
        per_member = [self._draw(g) for g in init_gens]
        stacked = {k: torch.stack([m[k] for m in per_member]) for k in per_member[0]}
        self.embed = nn.Parameter(stacked.pop("embed"))                 # [E, V, D]
        self.head = nn.Parameter(stacked.pop("head"))                   # [E, V, D]
        self.layers = nn.ModuleList()
        for i in range(s.n_layers):
            layer = nn.ParameterDict({
                "attn_norm": nn.Parameter(torch.ones(E, D)),
                "wqkv": nn.Parameter(stacked[f"{i}.wqkv"]),             # [E, 3D, D]: q, k, v stacked
                "wo": nn.Parameter(stacked[f"{i}.wo"]),                 # [E, D, D]
                "mlp_norm": nn.Parameter(torch.ones(E, D)),
                "w13": nn.Parameter(stacked[f"{i}.w13"]),               # [E, 2M, D]: gate w1, then w3
                "w2": nn.Parameter(stacked[f"{i}.w2"]),                 # [E, D, M]
            })
            self.layers.append(layer)
        self.final_norm = nn.Parameter(torch.ones(E, D))
        # Fused weights hold several nn.Linear-sized blocks along rows; Muon orthogonalises each block
        # on its own, as it would separate q, k, v (and w1, w3) layers.
        for layer in self.layers:
            layer["wqkv"].row_blocks = 3
            layer["w13"].row_blocks = 2
        cos, sin = rope_tables(s.seq_len, D // s.n_heads, s.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def _draw(self, g: torch.Generator) -> dict[str, torch.Tensor]:
        s = self.shape
        D, M, V = s.d_model, s.d_mlp, s.vocab
        lin = lambda out, inp: (torch.rand(out, inp, generator=g) * 2 - 1) / math.sqrt(inp)  # noqa: E731
        w = {"embed": torch.randn(V, D, generator=g)}
        for i in range(s.n_layers):
            # q, k, v and w1, w3 are drawn as separate nn.Linear weights would be, then stacked.
            w[f"{i}.wqkv"] = torch.cat([lin(D, D) for _ in range(3)])
            w[f"{i}.wo"] = lin(D, D)
            w[f"{i}.w13"] = torch.cat([lin(M, D) for _ in range(2)])
            w[f"{i}.w2"] = lin(D, M)
        w["head"] = lin(V, D)
        return w

    def _norm(self, x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), eps=self.shape.norm_eps) * gain[:, None, None, :]

    def _dropout(self, x: torch.Tensor, gens: list[torch.Generator] | MaskStream | None) -> torch.Tensor:
        p = self.shape.dropout
        if not self.training or p == 0.0:
            return x
        if gens is None:
            return F.dropout(x, p, training=True)
        if isinstance(gens, MaskStream):        # every member's mask in one draw (dropout_masks=hash)
            return x * gens.keep(x.shape[1:], p).to(x.dtype).mul_(1 / (1 - p))
        # One draw per member from its own generator, so a member's masks do not depend on E.
        mask = torch.empty_like(x)
        for e, g in enumerate(gens):
            mask[e].bernoulli_(1 - p, generator=g)
        return x * mask.mul_(1 / (1 - p))

    def forward(self, tokens: torch.Tensor, dropout_gens: list[torch.Generator] | MaskStream | None = None,
                members: slice | None = None) -> torch.Tensor:
        """tokens [E, B, T] (or [B, T], shared by all members) -> logits at the last position [E, B, V].
        members: only these members (a slice of the member axis; tokens and dropout_gens are theirs), so
        a large ensemble can train in groups that stay in cache (train.py); their gradients are theirs."""
        s = self.shape
        # The whole ensemble uses its parameters as they are: a view of each would add a backward step
        # that scatters every gradient into a fresh full-size tensor.
        whole = members is None or range(self.n_members)[members] == range(self.n_members)
        pick = (lambda w: w) if whole else (lambda w: w[members])
        embed, head, final_norm = pick(self.embed), pick(self.head), pick(self.final_norm)
        E, H = embed.shape[0], s.n_heads
        if tokens.dim() == 2:
            tokens = tokens.expand(E, *tokens.shape)
        B, T = tokens.shape[1:]
        D, dh = s.d_model, s.d_model // H
        # Member e's rows index its own table: flatten the tables and offset the token ids.
        offsets = (torch.arange(E, device=tokens.device) * s.vocab)[:, None, None]
        x = F.embedding(tokens + offsets, embed.reshape(E * s.vocab, D))        # [E, B, T, D]
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        for i, full in enumerate(self.layers):
            layer = full if whole else {k: pick(w) for k, w in full.items()}
            last = i == len(self.layers) - 1
            a = self._norm(x, layer["attn_norm"])
            qkv = torch.matmul(a.reshape(E, B * T, D), layer["wqkv"].transpose(1, 2))
            qkv = qkv.view(E * B, T, 3, H, dh).permute(2, 0, 3, 1, 4)       # [3, E*B, H, T, dh]
            q, k = apply_rope(qkv[:2], cos, sin)                             # q and k in one pass
            v = qkv[2]
            if last:  # the last query sees every key: no mask needed
                att = F.scaled_dot_product_attention(q[:, :, -1:], k, v)
                x, Tq = x[:, :, -1:], 1
            else:
                att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                Tq = T
            att = att.transpose(1, 2).reshape(E, B * Tq, D)
            x = x + self._dropout(torch.matmul(att, layer["wo"].transpose(1, 2)).view(E, B, Tq, D), dropout_gens)
            m = self._norm(x, layer["mlp_norm"]).reshape(E, B * Tq, D)
            gate, up = torch.matmul(m, layer["w13"].transpose(1, 2)).chunk(2, dim=-1)
            mlp = torch.matmul(F.silu(gate) * up, layer["w2"].transpose(1, 2)).view(E, B, Tq, D)
            x = x + self._dropout(mlp, dropout_gens)
        x = self._norm(x[:, :, -1:], final_norm)[:, :, 0]                      # [E, B, D]
        return torch.matmul(x, head.transpose(1, 2))                           # [E, B, V]

    def hidden_matrices(self) -> list[nn.Parameter]:
        """The per-member 2-D weights inside the blocks (attention and MLP): what Muon trains."""
        return [layer[k] for layer in self.layers for k in ("wqkv", "wo", "w13", "w2")]
