"""Progress reporting for long work: bars on a terminal, plain lines otherwise.

Library code takes a :class:`Progress` and calls ``task(...)``; the CLI decides how
it is shown (``-q`` silences it). Nothing here prints when ``enabled`` is false.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO


class Progress:
    """Reports units of work per task; a terminal gets a tqdm bar, a log gets lines."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, line_interval_s: float = 10.0):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.line_interval_s = line_interval_s
        self._lock = threading.Lock()  # tasks may report from several download threads

    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """One line of information about the work (silenced with the rest by ``-q``)."""
        if self.enabled:
            self._line(text)

    @property
    def is_terminal(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    @contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "it") -> Iterator[Callable[[float], None]]:
        """Yield ``advance(n)``; the task's end is always reported once."""
        if not self.enabled:
            yield lambda n=1: None
            return
        if self.is_terminal:
            from tqdm import tqdm

            with tqdm(total=total, desc=description, unit=unit, file=self.stream, leave=False,
                      unit_scale=unit == "B", dynamic_ncols=True) as bar:
                yield bar.update
            return
        done = 0.0
        last = time.monotonic()
        self._line(f"{description}: started" + (f" ({_amount(total, unit)})" if total else ""))

        def advance(n: float = 1) -> None:
            nonlocal done, last
            done += n
            if time.monotonic() - last >= self.line_interval_s:
                last = time.monotonic()
                share = f" ({100 * done / total:.0f}%)" if total else ""
                self._line(f"{description}: {_amount(done, unit)}{share}")

        yield advance
        self._line(f"{description}: done ({_amount(done, unit)})")


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB`` (binary units, up to TiB)."""
    return _amount(n, "B")


def _amount(n: float, unit: str) -> str:
    if unit == "B":
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if n < 1024 or suffix == "TiB":
                return f"{n:.0f} {suffix}" if suffix == "B" else f"{n:.1f} {suffix}"
            n /= 1024
    return f"{n:.0f} {unit}" + ("" if n == 1 or unit == "it" else "s")


SILENT = Progress(enabled=False)
