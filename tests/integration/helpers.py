"""Helpers for tests that run a daemon's loop in this process."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def running(daemon: Any) -> Iterator[threading.Thread]:
    """``daemon.run()`` on a thread for the duration of the block; then ``stop()`` and join.

    The thread is yielded so a test can see whether ``run`` ended on its own (it raised).
    """
    thread = threading.Thread(target=daemon.run, name=f"test-{type(daemon).__name__}", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        daemon.stop()
        thread.join(timeout=15)
        assert not thread.is_alive(), f"{type(daemon).__name__}.run() did not stop"
