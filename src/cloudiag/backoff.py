"""Exponential back-off between attempts: restarts of a child, retries on a bus away."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    """The delays between attempts: `first`, doubling up to `longest`, and back to `first`
    once an attempt lasted `healthy_after` seconds (a child that was working, not
    crash-looping) or on reset() (the thing tried again worked)."""

    first: float = 0.5
    longest: float = 30.0
    healthy_after: float = 60.0
    _next: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._next = self.first

    def delay(self, ran_for: float = 0.0) -> float:
        """The delay before the next attempt, after one that lasted `ran_for` seconds (0
        for one that failed at once)."""
        if ran_for >= self.healthy_after:
            self._next = self.first
        delay, self._next = self._next, min(self._next * 2, self.longest)
        return delay

    def reset(self) -> None:
        """Start again from `first`: the last attempt worked."""
        self._next = self.first
