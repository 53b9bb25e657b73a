"""Every real ECS message in corpus.yaml, placed where ECS puts it, is diagnosed as the cause it names."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from agent.diagnose.messages import read_message
from agent.model import Cause
from tests.diagnose.corpus_report import CORPUS, INFO, TARGET, diagnose, evaluate, held_out, read_as_message

IN_PLACE = [e for e in CORPUS if not read_as_message(e)]
AS_MESSAGES = [e for e in CORPUS if e["where"] in {"eventBridgeReason", "rolloutStateReason"}]


@pytest.mark.parametrize("entry", [pytest.param(e, id=e["id"]) for e in IN_PLACE])
def test_real_message_is_diagnosed_as_its_cause(entry: dict[str, Any]) -> None:
    findings = diagnose(entry)
    if entry["cause"] == INFO:
        assert findings == [], f"routine message produced {[f.cause.value for f in findings]}"
        return
    assert len(findings) == 1, f"expected one finding, got {[f.cause.value for f in findings]}"
    finding = findings[0]
    assert finding.cause == Cause(entry["cause"]), finding.summary
    assert finding.failure == Cause(entry["cause"]).is_failure
    quoted = repr(entry["message"])[1:41]  # evidence quotes messages with repr(): exact, and on one line
    assert any(entry["message"][:40] in line or quoted in line for line in finding.evidence)
    if finding.cause is Cause.UNKNOWN:
        # Say why it does not know: the causes it considered, and what would tell them apart.
        assert finding.nearest, finding.evidence
        assert any(line.startswith("could be ") for line in finding.evidence)


@pytest.mark.parametrize("entry", [pytest.param(e, id=e["id"]) for e in AS_MESSAGES])
def test_deployment_reason_reads_as_its_cause(entry: dict[str, Any]) -> None:
    reading = read_message(entry["message"])
    if entry["cause"] == INFO:
        assert reading is None or not reading.cause.is_failure
    else:
        assert reading is not None
        assert reading.cause == Cause(entry["cause"])


def test_corpus_ids_are_unique_and_every_entry_cites_a_source() -> None:
    ids = [e["id"] for e in CORPUS]
    assert len(ids) == len(set(ids))
    assert all(str(e.get("source", "")).startswith("https://") for e in CORPUS)


def test_every_cause_of_the_catalogue_has_rows_and_a_third_are_held_out() -> None:
    per_cause = Counter(e["cause"] for e in CORPUS)
    assert set(per_cause) == {c.value for c in Cause} | {INFO}
    assert all(count >= 3 for count in per_cause.values()), per_cause
    share = sum(held_out(e) for e in CORPUS) / len(CORPUS)
    assert 0.2 < share < 0.4


def test_held_out_rows_are_named_at_the_target_accuracy_for_every_cause() -> None:
    report = evaluate()
    assert report.below_target() == {}, report.render()
    assert all(tally.accuracy >= TARGET for tally in report.held_out.values())


def test_no_real_failure_is_ever_called_benign() -> None:
    benign = {c.value for c in Cause if not c.is_failure} | {INFO}
    wrong = [(row, got) for row, expected, got in evaluate().misses if expected not in benign and got in benign]
    assert wrong == []
