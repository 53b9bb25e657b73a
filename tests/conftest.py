"""What every test starts from."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from agent import logs
from agent.settings import LogFormat


@pytest.fixture(autouse=True)
def fresh_logs() -> Iterator[io.StringIO]:
    """Logs go to a stream of this test's own: a command run by an earlier test configured logging to
    a captured stderr that is closed by now."""
    lines = io.StringIO()
    logs.configure(LogFormat.JSON, stream=lines)
    yield lines
