"""Keep freed memory for reuse on CPU: glibc's malloc hands blocks above its mmap threshold (at most 32 MB) straight
back to the kernel when they are freed, so every training step maps them again and takes a page fault for each 4 KB
it touches (a ConvNeXt-T step at batch 8: about 60,000 faults, 0.2-0.3 s of system time). A training step frees and
allocates the same sizes over and over, so the trainer asks malloc to keep them: no mmap for large blocks and no
trimming of the heap's top. The process then holds its peak memory, as a GPU caching allocator does.

``PASSL_MALLOC=system`` leaves malloc as it is. Anything but glibc on Linux is left as it is too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from typing import Optional

__all__ = ["reuse_freed_memory", "restore_malloc_defaults", "malloc_tuned"]

logger = logging.getLogger("passl")

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_KEEP_ALL = 2**31 - 1  # the largest int mallopt takes: never trim

_tuned = False


def _glibc() -> Optional[ctypes.CDLL]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (raises AttributeError on musl and others)
        return libc
    except (OSError, AttributeError):
        return None


def reuse_freed_memory() -> bool:
    """Make glibc keep freed blocks of any size for reuse (see the module doc). Returns whether it did; a no-op with
    ``PASSL_MALLOC=system`` or without glibc. Process-wide, and inherited by processes forked later."""
    global _tuned
    if os.environ.get("PASSL_MALLOC", "").strip().lower() == "system":
        return False
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_ALL) == 1
    if ok and not _tuned:
        # debug: the console shows only the trainer's own lines (docs/architecture.md documents the setting)
        logger.debug("malloc: freed memory is kept for reuse; PASSL_MALLOC=system to opt out")
    _tuned = _tuned or ok
    return ok


def restore_malloc_defaults() -> None:
    """glibc's own behaviour again (for a forked data-loader worker, which has no reason to hold its peak)."""
    global _tuned
    libc = _glibc() if _tuned else None
    if libc is not None:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM)
    _tuned = False


def malloc_tuned() -> bool:
    """Whether :func:`reuse_freed_memory` is in effect in this process."""
    return _tuned
