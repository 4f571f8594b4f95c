"""Freed heap handed back to the system after large work (glibc's `malloc_trim`; a no-op without glibc).

glibc keeps memory a thread freed in that thread's arena, and the middle of a heap past its top, for reuse: after
a decode of the whole budget or a body of tens of MB the process stayed that much larger for good, until memory
ran short. Trimming after such work costs a few milliseconds, once per large request.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_LIBC_NAME = ctypes.util.find_library("c")
_MALLOC_TRIM = getattr(ctypes.CDLL(_LIBC_NAME), "malloc_trim", None) if _LIBC_NAME else None


def trim_heap() -> bool:
    """Return free heap pages of every arena to the system; True when the C library could (glibc)."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
