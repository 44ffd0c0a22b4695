"""How much memory a data source may ask for: declared sizes are checked against it before anything is allocated."""

from __future__ import annotations

import os
from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def available_memory_bytes() -> int | None:
    """Memory this machine could give a process now without swapping, in bytes, or None where it cannot tell.

    Linux's `MemAvailable` (free memory plus caches it can drop), else free physical pages from `os.sysconf`.
    """
    try:
        for line in MEMINFO.read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(":")
            if key == "MemAvailable" and value.split()[1:] == ["kB"]:
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX, or the name is unknown here (macOS)
        return None


def gib(n_bytes: int) -> str:
    """`n_bytes` for a message: '223.5 GiB', or '187.6 MiB' below 1 GiB."""
    return f"{n_bytes / 2**30:,.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:,.1f} MiB"
