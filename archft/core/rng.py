"""Derived seeds: every random draw of a run is a pure function of (seed, purpose, step).

So a run resumed at step s draws exactly the batches, augmentations, dropout masks and controller
samples an uninterrupted run draws from step s on, and no RNG state has to be checkpointed.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from any tuple of ints and strings (stable across processes)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def generator(device: torch.device | str, *parts: int | str) -> torch.Generator:
    """A generator on `device` seeded with `derive_seed(*parts)`."""
    return torch.Generator(device=device).manual_seed(derive_seed(*parts))
