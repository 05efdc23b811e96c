"""How much of a table of phrasings the offline parser understands. Per version (v1, v2, v3) it counts the
prompts understood (exactly the expected rules, or refused where a refusal is expected), refused (a refusal where
rules were expected) and wrong (other rules than expected, or rules where a refusal was expected).

    PYTHONPATH=layers/shared python -m tests.ai.prompt_figures       # the held-out, fresh and tuning tables
    PYTHONPATH=layers/shared python -m tests.ai.prompt_figures -v    # and every prompt not understood
"""
from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from crm.ai.registry import BrandRegistry
from crm.ai.rules_parser import parse_prompt
from crm.errors import InvalidInput
from tests.ai import fresh_prompts, held_out_prompts, tuning_prompts
from tests.ai.held_out_prompts import REFUSE, REGISTRY, TODAY

UNDERSTOOD, REFUSED, WRONG = "understood", "refused", "wrong"
TABLES = {"held-out": held_out_prompts.PROMPTS, "fresh": fresh_prompts.PROMPTS, "tuning": tuning_prompts.PROMPTS}


def registry() -> BrandRegistry:
    """The brand both tables are written for, on their fixed date."""
    return BrandRegistry(types=REGISTRY["attributes"]["types"], values=REGISTRY["attributes"]["values"],
                         tags=tuple(REGISTRY["tags"]), products=dict(REGISTRY["products"]),
                         campaigns=tuple((c["id"], c["name"]) for c in REGISTRY["campaigns"]), today=TODAY)


def outcome(prompt: str, expected: Any, known: BrandRegistry) -> tuple[str, Any]:
    """UNDERSTOOD, REFUSED or WRONG, and what the parser answered (its rules, or its refusal's message)."""
    try:
        got: Any = parse_prompt(prompt, known)[0].to_json()
    except InvalidInput as refused:
        return (UNDERSTOOD if expected == REFUSE else REFUSED), refused.message
    return (UNDERSTOOD if got == expected else WRONG), got


def figures(table: list[tuple[str, str, Any]], known: BrandRegistry) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    for version, prompt, expected in table:
        counts.setdefault(version, Counter())[outcome(prompt, expected, known)[0]] += 1
    counts["all"] = sum(counts.values(), Counter())
    return counts


def share(counts: Counter) -> float:
    return counts[UNDERSTOOD] / max(1, sum(counts.values()))


def report(verbose: bool = False) -> str:
    known = registry()
    lines = [f"{'table':10} {'version':8} {'prompts':>7} {'understood':>10} {'share':>6} {'refused':>7} {'wrong':>5}"]
    for name, table in TABLES.items():
        for version, counts in figures(table, known).items():
            lines.append(f"{name:10} {version:8} {sum(counts.values()):7} {counts[UNDERSTOOD]:10} "
                         f"{share(counts):6.0%} {counts[REFUSED]:7} {counts[WRONG]:5}")
        if verbose:
            for version, prompt, expected in table:
                kind, got = outcome(prompt, expected, known)
                if kind != UNDERSTOOD:
                    lines.append(f"    {kind:7} {version} {prompt!r} → {got}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(verbose="-v" in sys.argv))
