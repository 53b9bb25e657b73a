"""`ecs-medic diagnose --input`: real describe-* output in, findings out; bad input is one clear line, exit 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from tests.diagnose.builders import container, event, service, stopped_task

SAMPLE = Path(__file__).resolve().parents[2] / "agent" / "samples" / "stalled-deploy.json"


def run(argv, stdin_text=""):
    out = io.StringIO()
    code = main(argv, stdin=io.StringIO(stdin_text), stdout=out)
    return code, out.getvalue()


def test_json_output_is_one_object_with_findings(tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps({"tasks": [stopped_task(container(exit_code=1))], "failures": []}))
    code, out = run(["diagnose", "--input", str(path), "--output", "json"])
    assert code == 0
    document = json.loads(out)
    assert list(document) == ["findings"]
    [finding] = document["findings"]
    assert set(finding) >= {"cause", "failure", "source", "cluster", "service", "evidence", "summary", "advice"}
    assert finding["cause"] == "app_crash"
    assert finding["advice"]["commands"]


def test_reads_stdin_and_concatenated_describe_outputs():
    services_json = json.dumps(
        {
            "services": [service(events=[event("(service web) is unable to consistently start tasks successfully.")])],
            "failures": [],
        }
    )
    tasks_json = json.dumps(
        {
            "tasks": [
                stopped_task(container(exit_code=137, reason="OutOfMemoryError: Container killed due to memory usage"))
            ]
        }
    )
    code, out = run(["diagnose", "--input", "-", "--output", "json"], services_json + "\n" + tasks_json)
    assert code == 0
    causes = [f["cause"] for f in json.loads(out)["findings"]]
    assert causes == ["oom", "oom"]


def test_text_report_puts_failures_first_with_the_fix():
    code, out = run(["diagnose", "--input", str(SAMPLE)])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "7 findings, 6 failures, across 2 services"
    assert lines[2] == "production / checkout: 4 failures"
    assert lines[3].startswith("  FAIL image_not_found x4: checkout task ")
    assert (
        "$ aws ecs update-service --cluster production --service checkout --task-definition checkout:41 --region us-east-1"
        in out
    )
    assert out.index("FAIL oom") < out.index("ok   scale_in_or_deploy")


def test_nothing_found_is_still_exit_0(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text('{"tasks": [], "failures": []}')
    code, out = run(["diagnose", "--input", str(path)])
    assert (code, out) == (0, "No findings: nothing in the input reports a problem.\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '{"tasks": [\n  {"taskArn": "x",}\n]}',
            "bad.json:2:19: not valid JSON: expecting property name enclosed in double quotes",
            id="trailing-comma",
        ),
        pytest.param("", "bad.json:1:1: the input is empty", id="empty"),
        pytest.param("[1, 2]", "bad.json:1:1: expected an object with `tasks`, `services` or `failures`", id="array"),
        pytest.param(
            '{"clusters": []}',
            "bad.json:1:1: expected an object with `tasks`, `services` or `failures`",
            id="describe-clusters",
        ),
        pytest.param(
            '{"tasks": [\n  {"taskArn": "a"},\n  {"taskArn": "b", "containers": [{"name": "app", "exitCode": "one"}]}\n]}',
            'bad.json:3:63: tasks[1].containers[0].exitCode: input should be a valid integer, unable to parse string as an integer (got "one")',
            id="wrong-type-located",
        ),
        pytest.param(
            '{"services": [{"events": []}]}',
            "bad.json:1:15: services[0].serviceName: field required",
            id="missing-field-located",
        ),
    ],
)
def test_bad_input_is_one_located_line_and_exit_2(tmp_path, capsys, text, expected):
    path = tmp_path / "bad.json"
    path.write_text(text)
    code, out = run(["diagnose", "--input", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert out == ""
    assert err.startswith(f"ecs-medic: {path.parent}/{expected}"), err
    assert "Traceback" not in err


def test_missing_file_is_exit_2(capsys):
    code, _ = run(["diagnose", "--input", "no/such/file.json"])
    assert code == 2
    assert capsys.readouterr().err == "ecs-medic: no/such/file.json: no such file\n"


def test_installed_command_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "agent", "diagnose", "--input", str(SAMPLE), "--output", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["findings"]) == 7


def test_one_of_each_reads_as_english(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"tasks": [stopped_task(container(exit_code=1))]}))
    code, out = run(["diagnose", "--input", str(path)])
    assert code == 0
    assert out.splitlines()[0] == "1 finding, 1 failure, across 1 service"
    assert out.splitlines()[2] == "prod / web: 1 failure"


def test_deep_nesting_is_a_clear_error_not_a_crash(tmp_path, capsys):
    """Before, the decoder died with a RecursionError and a traceback."""
    path = tmp_path / "deep.json"
    path.write_text('{"tasks": [' + "[" * 100_000 + "]" * 100_000 + "]}")
    code, out = run(["diagnose", "--input", str(path)])
    err = capsys.readouterr().err
    assert (code, out) == (2, "")
    assert err == f"ecs-medic: {path}:1:74: nested deeper than 64 levels: this is not describe-* output\n"


def test_input_larger_than_the_limit_is_refused_before_it_is_read(tmp_path, capsys):
    """Before, 200 MB of input took 774 MB of memory; now the size is checked first (a sparse file here)."""
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(200 * 2**20)
    code, _ = run(["diagnose", "--input", str(path)])
    assert code == 2
    assert capsys.readouterr().err == (
        f"ecs-medic: {path}: larger than 64 MiB; describe-* output for one service is a few MiB at most: split the input\n"
    )


def test_standard_input_is_bounded_too(monkeypatch, capsys):
    monkeypatch.setattr("agent.cli.MAX_INPUT_CHARS", 1000)
    code, _ = run(["diagnose", "--input", "-"], '{"tasks": []}' + " " * 2000)
    assert code == 2
    assert capsys.readouterr().err.startswith("ecs-medic: <stdin>: larger than 0 MiB")


def test_text_output_strips_terminal_escapes_from_what_ecs_and_applications_wrote(tmp_path):
    """A stop reason that clears the screen and forges a line must print as inert text."""
    forged = "boom\x1b[2J\x1b[H\nAll checks ok\r\x1b]0;pwned\x07\u202eevil"
    task = stopped_task(container(exit_code=1, reason=forged), stopped_reason=forged)
    path = tmp_path / "forged.json"
    path.write_text(json.dumps({"tasks": [task]}))
    code, out = run(["diagnose", "--input", str(path)])
    assert code == 0
    assert "\x1b" not in out
    assert "\r" not in out
    assert "\u202e" not in out
    assert "\x07" not in out
    assert not any(line.startswith("All checks ok") for line in out.splitlines())
    assert "boom" in out
    code, out = run(["diagnose", "--input", str(path), "-o", "json"])
    assert code == 0
    assert "\x1b" not in out  # JSON escapes control characters itself (\u001b): the evidence stays exact
    assert "boom" in json.loads(out)["findings"][0]["evidence"][0]


def test_log_flags_work_offline_too(capsys):
    assert run(["diagnose", "--input", str(SAMPLE), "--log-level", "info", "--log-format", "json"])[0] == 0
    [line] = capsys.readouterr().err.splitlines()
    logged = json.loads(line)
    assert (logged["event"], logged["tasks"], logged["findings"]) == ("input_diagnosed", 4, 7)
    assert run(["diagnose", "--input", str(SAMPLE)])[0] == 0
    assert capsys.readouterr().err == ""
