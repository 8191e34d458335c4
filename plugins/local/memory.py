"""Keeping the offline backend's memory flat over a long recording (glibc's malloc).

The Whisper models run on several native threads: CTranslate2's own worker threads (one
per worker of :func:`~runpipe.plugins.local.models.whisper_workers`), OpenMP's, and the
Python threads that hand them packs. glibc gives each thread that allocates its own arena
(up to 8 per core) and keeps what is freed there for that arena's next use, so every
thread's high-water mark of decoder buffers stays resident: over one hour of the dev mix
the backend's RSS rose window after window to a peak of 1.93 GB. Two measures, neither of
which changes a result:

* :func:`share_malloc_arenas` caps the arenas at ``ARENAS`` before the models start their
  threads, so the threads reuse each other's freed memory;
* :func:`release_free_memory` hands memory freed at the end of a window back to the system,
  so the next window does not start from the last one's high-water mark.

Both are no-ops where the C library is not glibc (macOS, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

#: glibc's ``mallopt`` parameter for the arena cap (malloc.h: ``#define M_ARENA_MAX -8``).
M_ARENA_MAX = -8
#: Arenas the process may use: one per core of the 2-core machines runpipe is sized for.
#: More threads than arenas only share an arena's lock, which the decoders, busy in their own
#: buffers, rarely contend for.
ARENAS = 2


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def share_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas at :data:`ARENAS` for threads started from now on, unless
    ``MALLOC_ARENA_MAX`` is set (glibc applied the user's choice at start-up). Whether the
    cap was set."""
    libc = _glibc()
    if libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, ARENAS))


def release_free_memory() -> None:
    """Return the free memory of every arena to the system (``malloc_trim``)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
