"""Per-interaction random generators that do not depend on evaluation order.

Every robot-user call gets its own ``numpy.random.Generator`` derived only from
``(seed, case_id, class_name, step, user_name)``::

    SeedSequence(seed, spawn_key=(h(case_id), h(class_name), step, h(user_name)))

with ``h`` = first 8 bytes of BLAKE2b over the UTF-8 text of the value (``str(value)``), read
as an unsigned little-endian int. Python's ``hash()`` is salted per process and must not be
used. Because no state is shared between calls, running cases in another order, in threads or
in worker processes gives identical prompts. The global NumPy, ``random`` and torch RNGs are
never touched.
"""

from __future__ import annotations

import hashlib

import numpy as np

from omnimedseg.errors import UsageError

__all__ = ["stable_hash", "seed_sequence", "make_rng", "check_rng"]


def stable_hash(value) -> int:
    """64-bit process-independent hash of ``str(value)`` (so case 3 and case "3" coincide)."""
    digest = hashlib.blake2b(str(value).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def seed_sequence(seed: int, case_id, class_name, step: int, user_name) -> np.random.SeedSequence:
    """The SeedSequence for one interaction (see module docstring)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed: expected an int >= 0, found {seed!r}")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise UsageError(f"step: expected an int >= 0, found {step!r}")
    return np.random.SeedSequence(int(seed), spawn_key=(stable_hash(case_id), stable_hash(class_name),
                                                         int(step), stable_hash(user_name)))


def make_rng(seed: int, case_id, class_name, step: int, user_name) -> np.random.Generator:
    """A fresh PCG64 generator for one (case, class, step, user)."""
    return np.random.default_rng(seed_sequence(seed, case_id, class_name, step, user_name))


def check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise UsageError("rng: expected a numpy.random.Generator (e.g. make_rng(seed, case_id, class_name, "
                         f"step, user_name)), found {type(rng).__name__}")
    return rng
