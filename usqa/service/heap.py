"""The process's memory housekeeping: freed heap handed back to the system after large work, and the objects of
startup kept out of the cyclic collector's full passes.

glibc keeps memory a thread freed in that thread's arena, and the middle of a heap past its top, for reuse: after
a decode of the whole budget or a body of tens of MB the process stayed that much larger for good, until memory
ran short. Trimming (`malloc_trim`; a no-op without glibc) after such work costs a few milliseconds, once per
large request.

Python's cyclic collector, in a full pass, visits every tracked object, the GIL held: with the service's imports
alone (about 180,000 objects) a pass took 72 ms on the 2-core machine, five frames' latency budget, whenever
enough objects had outlived the younger generations (the scan sessions' records do). Frozen after startup, the
modules, models and settings are left out of those passes; what is created later is collected as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

_LIBC_NAME = ctypes.util.find_library("c")
_MALLOC_TRIM = getattr(ctypes.CDLL(_LIBC_NAME), "malloc_trim", None) if _LIBC_NAME else None


def trim_heap() -> bool:
    """Return free heap pages of every arena to the system; True when the C library could (glibc)."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def freeze_startup_objects() -> None:
    """Collect what startup left behind, then leave every object alive now out of later full collections."""
    gc.collect()
    gc.freeze()


def thaw_startup_objects() -> None:
    """Return the frozen objects to the collector (a process that goes on after the service stops, as tests do)."""
    gc.unfreeze()
