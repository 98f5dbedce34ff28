"""What this process may use of the machine's CPU (its own module, so that any detector module can ask without
importing the backends)."""

from __future__ import annotations

import os

__all__ = ["usable_cores"]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and ``taskset`` narrow), not
    the machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # platforms without sched_getaffinity
        return os.cpu_count() or 1
