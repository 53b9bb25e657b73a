"""Print the corpus accuracy report at the end of any run that read the corpus."""

from __future__ import annotations

from typing import Any

import pytest

_ran_corpus: list[bool] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _ran_corpus[:] = [any("test_corpus" in item.nodeid for item in items)]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _ran_corpus or not _ran_corpus[0]:
        return
    from tests.diagnose.corpus_report import evaluate  # noqa: PLC0415 - only when the corpus ran

    terminalreporter.write_sep("-", "diagnosis corpus: accuracy per cause")
    terminalreporter.write_line(evaluate().render())
