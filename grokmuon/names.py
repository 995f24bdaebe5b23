"""The names a config may use (tasks, heads) and the checks on them: no torch here, so a bad command line
is refused in the time it takes to import Hydra, not PyTorch."""
from __future__ import annotations

# Train fractions from the paper's Fig. 2; modsub is our seventh task (the paper names only six).
TRAIN_FRACTIONS = {
    "modadd": 0.8, "modsub": 0.5, "modmul": 0.5, "moddiv": 0.8,
    "modexp": 0.7, "gcd": 0.5, "parity": 0.5,
}
TASKS = tuple(TRAIN_FRACTIONS)
# The binary tasks whose rows start at b = 1 (b = 0 has no answer); every other one starts at b = 0.
FIRST_B = {"moddiv": 1}
HEADS = ("softmax", "stablemax", "sparsemax")


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % k for k in range(2, int(n ** 0.5) + 1))
