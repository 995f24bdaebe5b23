"""When the Fourier probes move (fourier.py's curves in metrics.csv), as one epoch per member, so the
phases of grokking can be compared between optimizers the way grokking epochs are. Pure functions over
one member's probe curve (epochs ascending, the probe epochs only); no I/O.

Nanda et al. (2023) read three phases off these curves on modular addition: memorisation (train loss
falls, the key frequencies carry little of it), circuit formation (the loss with only the key frequencies
kept, restricted_loss, falls; the loss with them removed, excluded_loss, rises as the fit comes to rest
on them) and clean-up (the memorising part is decayed away and validation accuracy jumps). Each epoch
here is the one at which a curve has made half of its whole move over the run:

  restricted_drop_epoch  the first probe epoch at which restricted_loss has fallen half of the way from
                         its first value to its lowest value of the run.
  excluded_rise_epoch    the first probe epoch at which excluded_loss has risen half of the way from its
                         low point to its later peak (the low point: its lowest value before the peak;
                         the peak: its highest value after that low point). On modadd the excluded loss
                         first falls with the training loss during memorisation and then rises: the
                         rise is the move that matters.

A curve that moves less than MIN_MOVE nats over the run has no such epoch (None): a flat curve's
"half-way" would be noise. Halfway on the loss itself (nats), not on its log: the log would put the
midpoint of a fall from 4.6 to 0.001 at 0.07, when the circuit is long formed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

HALF = 0.5          # the share of a curve's whole move that dates it: the midpoint, robust to both ends
MIN_MOVE = 0.1      # nats; a smaller whole move (of 4.57 = ln 97 at chance) is not a phase, and gets None


def _clean(epochs: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The probe epochs with a finite value, in epoch order."""
    e, v = np.asarray(epochs, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(v)
    order = np.argsort(e[keep], kind="stable")
    return e[keep][order], v[keep][order]


def drop_epoch(epochs: Sequence[float], values: Sequence[float], half: float = HALF,
               min_move: float = MIN_MOVE) -> int | None:
    """The first epoch at which values has fallen `half` of the way from its first value to its lowest;
    None if it falls by less than min_move."""
    e, v = _clean(epochs, values)
    if len(v) == 0 or v[0] - v.min() < min_move:
        return None
    level = v[0] - half * (v[0] - v.min())
    return int(e[np.argmax(v <= level)])


def rise_epoch(epochs: Sequence[float], values: Sequence[float], half: float = HALF,
               min_move: float = MIN_MOVE) -> int | None:
    """The first epoch at which values has risen `half` of the way from its low point to its later peak
    (the largest rise the curve makes: the low is the lowest value before the peak, the peak the highest
    after the low); None if that rise is less than min_move."""
    e, v = _clean(epochs, values)
    if len(v) < 2:
        return None
    low_so_far = np.minimum.accumulate(v)           # the lowest value up to each epoch
    peak = int(np.argmax(v - low_so_far))          # the end of the largest rise
    low = int(np.argmin(v[:peak + 1]))
    if v[peak] - v[low] < min_move:
        return None
    level = v[low] + half * (v[peak] - v[low])
    after = np.arange(len(v)) > low
    return int(e[np.argmax(after & (v >= level))])


def member_phases(epochs: Sequence[float], restricted: Sequence[float], excluded: Sequence[float]) -> dict:
    """A member's phase epochs (the module doc) from its restricted and excluded loss curves."""
    return {"restricted_drop_epoch": drop_epoch(epochs, restricted),
            "excluded_rise_epoch": rise_epoch(epochs, excluded)}


PHASES = ("restricted_drop_epoch", "excluded_rise_epoch")
