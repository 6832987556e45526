"""Deterministic pseudo-random numbers for generated replay data: a value is a pure function of
its inputs, so a test can compute what the server serves."""

from __future__ import annotations

_MASK = (1 << 64) - 1


def _mix(a: int, b: int) -> int:
    """A fast 64-bit hash of two integers (splitmix64 finaliser)."""
    x = (a * 0x9E3779B97F4A7C15 + b * 0xBF58476D1CE4E5B9 + 0x632BE59BD9B4E019) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def unit_hash(a: int, b: int) -> float:
    """A deterministic number in [0, 1) for (a, b)."""
    return _mix(a, b) / 2.0**64
