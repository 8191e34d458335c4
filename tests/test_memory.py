"""The offline backend's malloc settings: threads share glibc's arenas once capped, and the
user's own MALLOC_ARENA_MAX wins."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

# Eight threads allocate at once (held by a barrier), then glibc's malloc_info counts the heaps.
_COUNT_ARENAS = """
import ctypes, sys, tempfile, threading
from runpipe.plugins.local import memory
capped = memory.share_malloc_arenas() if sys.argv[1] == "cap" else None
together = threading.Barrier(8)
def allocate():
    blocks = [bytearray(10_000) for _ in range(200)]  # above pymalloc's 512 bytes: malloc's
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile("r") as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream)); libc.fclose(ctypes.c_void_p(stream))
    print(capped, report.read().count("<heap nr="))
"""


def _arenas(mode: str, **env: str) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    out = subprocess.run([sys.executable, "-c", _COUNT_ARENAS, mode], capture_output=True, text=True, check=True, env=environment)
    capped, heaps = out.stdout.split()
    return capped, int(heaps)


def test_capped_threads_share_arenas():
    from runpipe.plugins.local import memory

    assert _arenas("cap") == ("True", memory.ARENAS)
    assert _arenas("leave")[1] > memory.ARENAS  # without the cap, threads take arenas of their own


def test_the_users_malloc_arena_max_is_left_alone():
    assert _arenas("cap", MALLOC_ARENA_MAX="4") == ("False", 4)


_FREE_THEN_RELEASE = """
from runpipe.plugins.local import memory
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) // 1024
blocks = [bytearray(10_000) for _ in range(20_000)]  # 200 MB in malloc's heap, not mmap's
pin = bytearray(10_000)  # above them, so free() alone cannot shrink the heap from its top
del blocks
freed = rss()
memory.release_free_memory()
print(freed, rss())
"""


def test_released_memory_goes_back_to_the_system():
    freed, released = map(int, subprocess.run([sys.executable, "-c", _FREE_THEN_RELEASE], capture_output=True, text=True, check=True).stdout.split())
    assert freed - released > 150  # MiB of the 190 freed
