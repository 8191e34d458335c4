"""Opt-in pytest fixtures for plugin test suites: ``pytest_plugins = ["runpipe.testing.fixtures"]``
in your ``conftest.py``. runpipe does not load them by itself.

* ``runpipe_isolated`` (autouse): every test gets its own runpipe user folder (run store, caches
  of normalized audio, uploads, retime results) and no API keys or endpoints from the
  environment, so tests neither see each other's stored results nor spend a real key.
* ``runpipe_engine``: an engine from :func:`runpipe.testing.make_engine`, closed afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

#: Variables that would point a test at a real account or endpoint, or change what hooks print.
ENVIRONMENT = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_API_VERSION",
               "GOOGLE_GENAI_USE_VERTEXAI", "RUNPIPE_TRACE_HOOKS", "RUNPIPE_LOAD_PLUGINS")


@pytest.fixture(autouse=True)
def runpipe_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user folder of this test (``RUNPIPE_USER_PATH``)."""
    folder = tmp_path / "runpipe-user"
    monkeypatch.setenv("RUNPIPE_USER_PATH", str(folder))
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def runpipe_engine() -> Iterator[object]:
    from runpipe.testing import make_engine

    with make_engine() as engine:
        yield engine
