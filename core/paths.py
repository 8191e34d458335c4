"""Where runpipe keeps its own files. Everything honours ``RUNPIPE_USER_PATH`` so tests and
embedding tools can point runpipe at a folder of their own."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def user_dir() -> Path:
    """The folder for runpipe's state (run store, caches). Created on first use."""
    base = os.environ.get("RUNPIPE_USER_PATH")
    if base:
        path = Path(base)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        path = (Path(xdg) if xdg else Path.home() / ".cache") / "runpipe"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(*parts: str) -> Path:
    """A sub-folder of :func:`user_dir`, e.g. ``cache_dir("normalized")``."""
    path = user_dir().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def builtin_schemas_dir() -> Path:
    return Path(str(resources.files("runpipe.schemas")))


def builtin_pipelines_dir() -> Path:
    return Path(str(resources.files("runpipe.pipelines")))
