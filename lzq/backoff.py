"""Backoff for daemons that lost PostgreSQL or RabbitMQ: wait longer each time, never crash-loop."""

from __future__ import annotations

import random


class Backoff:
    """Exponential delays with jitter: 0.5 s, 1 s, 2 s, ... up to ``max_s``; ``reset()`` on success."""

    def __init__(self, first_s: float = 0.5, max_s: float = 15.0) -> None:
        self.first_s, self.max_s = first_s, max_s
        self.failures = 0

    def next_delay(self) -> float:
        """The next delay in seconds (and count one more failure)."""
        delay = min(self.max_s, self.first_s * 2**self.failures)
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.failures = 0
