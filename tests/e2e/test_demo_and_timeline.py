"""The demo tells a story (what changed, not every pass), and a timeline page shows it per service."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest

from agent.cli import main
from agent.demo import run_demo
from agent.sim import SCENARIOS, World
from tests.e2e.conftest import prepare

PASS_HEADER = re.compile(r"^\[\+\d\dm\d\ds\] pass: ", re.MULTILINE)


def test_the_dry_run_demo_shows_what_changed_and_verbose_shows_every_pass():
    quiet, verbose = io.StringIO(), io.StringIO()
    assert run_demo(["crash-loop"], enforce=False, out=quiet, minutes=10) == 0
    assert run_demo(["crash-loop"], enforce=False, out=verbose, minutes=10, verbose=True) == 0
    shown, every = len(PASS_HEADER.findall(quiet.getvalue())), len(PASS_HEADER.findall(verbose.getvalue()))
    assert shown == 1  # the failure and its proposal appear once; nothing changes after that
    assert every > 10  # the scenario ends after quiet passes; verbose shows each of them
    assert quiet.getvalue().count("PROPOSED  prod/worker: rollback_task_definition") == 1
    assert "1 service, 1 with failures, 1 proposal," in quiet.getvalue()
    assert "Dry-run: nothing was changed." in quiet.getvalue()


def _self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page
    assert "<script" not in page.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page), "the page loads something from outside"
    assert "<link" not in page.lower()


def test_demo_writes_a_timeline_page(tmp_path, capsys):
    page = tmp_path / "demo.html"
    code = main(["demo", "--scenario", "crash-loop", "--enforce", "--timeline", str(page)], stdout=io.StringIO())
    assert code == 0, capsys.readouterr().err
    text = page.read_text()
    _self_contained(text)
    assert "crash-loop: prod/worker" in text
    events = re.findall(r"<tr><td>[^<]+</td><td>([^<]+)</td><td>([^<]+)</td>", text)
    kinds = [kind for row, kind in events if row == "crash-loop: prod/worker"]
    assert kinds[0] == "app_crash"
    assert "applied" in kinds
    assert "verified" in kinds
    assert "recovered" in kinds
    assert kinds.index("applied") < kinds.index("recovered")


def test_demo_timeline_needs_an_html_or_svg_name(tmp_path, capsys):
    assert main(["demo", "--timeline", str(tmp_path / "t.png")], stdout=io.StringIO()) == 2
    assert "name an .html page (or an .svg chart)" in capsys.readouterr().err


@pytest.fixture
def aws_env(monkeypatch):
    with World.start(seed=11, start_time=datetime.now(UTC) - timedelta(minutes=30)) as world:
        for key, value in world.environment.items():
            monkeypatch.setenv(key, value)
        yield world


def test_once_over_several_passes_writes_a_timeline(aws_env, tmp_path):
    prepare(aws_env, SCENARIOS["crash-loop"])
    page = tmp_path / "once.html"
    out = io.StringIO()
    code = main(["once", "--passes", "2", "--every", "0s", "--timeline", str(page)], stdout=out)
    assert code == 0
    text = page.read_text()
    _self_contained(text)
    assert "<p>2 passes (2 ok, 0 partial, 0 saw nothing)</p>" in text
    assert "<td>prod/worker</td><td>app_crash</td>" in text
    assert "<td>prod/worker</td><td>proposed</td>" in text
    chart = tmp_path / "once.svg"
    assert main(["once", "--timeline", str(chart)], stdout=io.StringIO()) == 0
    assert chart.read_text().startswith("<svg")
