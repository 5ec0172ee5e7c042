"""Worker processes that end with the run that started them (``convert -j N``, ``benchmark -j N``)."""

from __future__ import annotations

import os
import sys


def die_with_parent(parent: int) -> None:
    """Process-pool initializer. Without it, the workers of a run killed with SIGKILL (or by the OOM killer)
    went on working, outside the run's lock, into folders the next run owns. Linux: the kernel kills the
    worker when its parent dies (``PR_SET_PDEATHSIG``); a parent already gone ends it here."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


__all__ = ["die_with_parent"]
