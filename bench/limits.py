"""File-descriptor limit: every socket is one descriptor, and the default soft limit is 1,024."""

from __future__ import annotations

import resource


def raise_nofile(want: int | None = None) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``want`` (default: the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if want is None else min(want, hard)
    if hard == resource.RLIM_INFINITY and want is None:
        target = 1 << 20
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
