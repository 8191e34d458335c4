"""Where runpipe keeps its own files. Everything honours ``RUNPIPE_USER_PATH`` so tests and
embedding tools can point runpipe at a folder of their own."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from runpipe.errors import StateError


def user_dir() -> Path:
    """The folder for runpipe's state (run store, caches). Created on first use."""
    base = os.environ.get("RUNPIPE_USER_PATH")
    if base:
        path, named_by = Path(base), f"RUNPIPE_USER_PATH={base}"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        path = (Path(xdg) if xdg else Path.home() / ".cache") / "runpipe"
        named_by = f"runpipe's folder {path}"
    return _folder(path, named_by)


def _folder(path: Path, named_by: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise StateError(f"{named_by}: {blocker} is a file, not a folder; point RUNPIPE_USER_PATH at a folder") from None
    except OSError as exc:
        raise StateError(f"{named_by}: cannot create {path}: {exc.strerror or exc}; "
                         "point RUNPIPE_USER_PATH at a folder you can write") from None
    return path


def cache_dir(*parts: str) -> Path:
    """A sub-folder of :func:`user_dir`, e.g. ``cache_dir("normalized")``."""
    path = user_dir().joinpath(*parts)
    return _folder(path, "runpipe's cache")


def builtin_schemas_dir() -> Path:
    return Path(str(resources.files("runpipe.schemas")))


def builtin_pipelines_dir() -> Path:
    return Path(str(resources.files("runpipe.pipelines")))
