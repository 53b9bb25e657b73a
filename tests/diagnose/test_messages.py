"""The cheap literal test in front of each family's regex never changes the regex's answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.diagnose import messages
from agent.diagnose.messages import normalize
from tests.diagnose.corpus_report import CORPUS

FAMILIES = {name: value for name, value in vars(messages).items() if isinstance(value, messages._Fragments)}
TEXTS = [normalize(e["message"]) for e in CORPUS]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_literal_test_agrees_with_the_regex_on_every_real_message_and_its_cuts(name):
    family = FAMILIES[name]
    for text in TEXTS:
        for cut in {text, text[: len(text) // 2], text[len(text) // 3 :]}:
            assert bool(family.search(cut)) == bool(family.pattern.search(cut)), (name, cut)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TEXTS), min_size=1, max_size=3), st.text(max_size=20))
def test_the_literal_test_agrees_with_the_regex_on_any_mix(pieces, noise):
    text = normalize(noise.join(pieces))
    for family in FAMILIES.values():
        assert bool(family.search(text)) == bool(family.pattern.search(text))


@pytest.mark.parametrize(
    ("fragment", "anchor"),
    [
        (r"can'?t pull the image", "t pull the image"),
        (r"host ec2 \(instance \S+\) (?:stopped|terminated)", "host ec2 (instance "),
        (r"api\.ecr\.", "api.ecr."),
        (r"exec: [^:]*: (?:stat|permission denied)", "exec: "),
        (r"stopped|terminated", None),
        (r"\beni\b", "eni"),
        (r"\boom\b", "oom"),
        (r"ip", None),
    ],
)
def test_anchors_are_text_every_match_must_contain(fragment, anchor):
    assert messages._anchor(fragment) == anchor
