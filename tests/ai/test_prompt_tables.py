"""The tables of marketer phrasings through the offline parser: `held_out_prompts` (frozen before the parser was
changed for them), `fresh_prompts` (written after it, committed before its first run on them) and `tuning_prompts`
(worked on). A wrong rule fails outright in any table, and so does an answer where a refusal is expected; every
tuning prompt gives exactly its rules; of the held-out prompts at least 95 % are understood (the rest may be
refused, never answered wrongly). `python -m tests.ai.prompt_figures` prints
the figures; `pytest -s` prints them here too."""
from __future__ import annotations

import pytest

from tests.ai import fresh_prompts, held_out_prompts, tuning_prompts
from tests.ai.held_out_prompts import REFUSE
from tests.ai.prompt_figures import UNDERSTOOD, WRONG, figures, outcome, registry, report, share

KNOWN = registry()


def _ids(table):
    return [f"{version}:{prompt}" for version, prompt, _ in table]


HELD_OUT = held_out_prompts.PROMPTS + fresh_prompts.PROMPTS


@pytest.mark.parametrize("version, prompt, expected", HELD_OUT, ids=_ids(HELD_OUT))
def test_a_held_out_prompt_is_never_answered_with_other_rules(version, prompt, expected):
    kind, got = outcome(prompt, expected, KNOWN)
    assert kind != WRONG, f"{prompt!r} gave {got}"
    if expected == REFUSE:
        assert kind == UNDERSTOOD, f"{prompt!r} should be refused"


@pytest.mark.parametrize("version, prompt, expected", tuning_prompts.PROMPTS, ids=_ids(tuning_prompts.PROMPTS))
def test_a_tuning_prompt_gives_exactly_its_rules_or_its_refusal(version, prompt, expected):
    kind, got = outcome(prompt, expected, KNOWN)
    assert kind == UNDERSTOOD, f"{prompt!r} gave {got}"


def test_the_held_out_share_understood_is_at_least_95_percent_and_none_is_wrong():
    print(f"\n{report()}")
    counts = figures(held_out_prompts.PROMPTS, KNOWN)
    assert counts["all"][WRONG] == 0
    assert share(counts["all"]) >= 0.95, counts


def test_the_tables_are_large_enough_to_mean_something():
    held_out = [version for version, _, _ in held_out_prompts.PROMPTS]
    assert all(held_out.count(version) >= 40 for version in ("v1", "v2", "v3"))
    assert len(tuning_prompts.PROMPTS) >= 180
    assert len(held_out) + len(tuning_prompts.PROMPTS) >= 300
    prompts = [prompt for _, prompt, _ in HELD_OUT + tuning_prompts.PROMPTS]
    assert len(set(prompts)) == len(prompts), "a phrasing is in both tables, or twice in one"
