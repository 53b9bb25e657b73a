"""The `ecs-medic` command. Every error a person can cause becomes one clear line and an exit code.

Exit codes: 0 done (whatever was found), 1 an action failed, 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from agent import __version__
from agent.describe_json import InputError, parse_describe_output
from agent.diagnose import diagnose_document
from agent.report import finding_to_dict, render_text

if TYPE_CHECKING:
    from collections.abc import Sequence

EXIT_OK = 0
EXIT_ACTION_FAILED = 1
EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit 2."""


def _read_input(path: str, stdin: TextIO) -> tuple[str, str]:
    if path == "-":
        return stdin.read(), "<stdin>"
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected a JSON file") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror}") from None


def _diagnose(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    text, source = _read_input(args.input, stdin)
    document = parse_describe_output(text, source)
    findings = diagnose_document(tasks=document.tasks, services=document.services, failures=document.failures)
    if args.output == "json":
        json.dump({"findings": [finding_to_dict(f) for f in findings]}, stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write(render_text(findings))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecs-medic",
        description="Diagnose failing Amazon ECS services with evidence, and fix them safely.",
    )
    parser.add_argument("--version", action="version", version=f"ecs-medic {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    diagnose = commands.add_parser(
        "diagnose",
        help="explain why tasks and services fail, from describe-tasks/describe-services JSON",
        description="Read JSON as printed by `aws ecs describe-tasks` and/or `aws ecs describe-services` "
        "and print one finding per stopped task, problem event and failed deployment.",
    )
    diagnose.add_argument("--input", required=True, metavar="FILE", help="the JSON file, or - for stdin")
    diagnose.add_argument("--output", choices=("text", "json"), default="text", help="report format")
    diagnose.set_defaults(handler=_diagnose)
    return parser


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run one command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = stdout or sys.stdout
    try:
        code: int = args.handler(args, stdin or sys.stdin, out)
    except (InputError, UsageError) as error:
        sys.stderr.write(f"ecs-medic: {error}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    return code
