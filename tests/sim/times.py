"""The simulated clock's start in every test world: a fixed instant, so timestamps are comparable."""

from __future__ import annotations

from datetime import UTC, datetime

START = datetime(2026, 4, 19, 3, 0, tzinfo=UTC)
