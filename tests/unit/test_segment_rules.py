"""Segment rules (app/core/segments.py): every field read with the values it takes (numbers given as text too,
ids as a list or with commas, sorted and without repeats), a message per bad rule naming its place and what is
wrong, the segment-level problems, tiers checked against the shop's, and rules read back equal from their data."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.rfm import RFM_LABELS
from app.core.segments import FIELDS, InvalidSegment, Problem, Rule, Rules, parse


def one(field: str, op: str, value: Any) -> Rule:
    return parse({"rules": [{"field": field, "op": op, "value": value}]}).rules[0]


def problems(data: Any, **kw: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidSegment) as refused:
        parse(data, **kw)
    return [(p.field, p.message) for p in refused.value.problems]


@pytest.mark.parametrize(("field", "op", "given", "read"), [
    ("orders_count", ">=", 3, 3), ("orders_count", "=", " 0 ", 0), ("orders_count", "<=", "12", 12),
    ("total_spent", ">=", "99.50", Decimal("99.50")), ("total_spent", "<=", 100, Decimal("100")),
    ("total_spent", ">=", 12.5, Decimal("12.5")),
    ("last_order", "within", 30, 30), ("first_order", "more_than", "365", 365),
    ("bought_product", "any", ["9", "10", "9"], ("10", "9")), ("bought_product", "any", "p2, p1,", ("p1", "p2")),
    ("bought_product", "any", [632910392], ("632910392",)),
    ("bought_collection", "any", ["coffee"], ("coffee",)), ("tier", "any", ["gold", "silver"], ("gold", "silver")),
    ("survey_score", "<=", 2, 2), ("nps", ">=", 0, 0), ("nps", "<=", 10, 10),
    ("consent", "accepts", "email", "email"), ("consent", "refuses", "sms", "sms"),
    ("rfm_segment", "any", ["lost", "at_risk"], ("at_risk", "lost")),
])
def test_each_field_reads_its_values(field: str, op: str, given: Any, read: Any) -> None:
    assert one(field, op, given) == Rule(field, op, read)


@pytest.mark.parametrize(("rule", "message"), [
    ({"field": "colour", "op": "=", "value": 1}, "unknown field 'colour' (one of orders_count, total_spent,"),
    ({"op": "=", "value": 1}, "unknown field None"),
    ({"field": "orders_count", "op": "within", "value": 1}, "orders_count takes >= or <= or =, not 'within'"),
    ({"field": "total_spent", "op": "=", "value": 1}, "total_spent takes >= or <=, not '='"),
    ({"field": "orders_count", "op": ">=", "value": -1}, "orders_count is a whole number of orders from 0 to 1,000,000"),
    ({"field": "orders_count", "op": ">=", "value": 2.5}, "orders_count is a whole number of orders"),
    ({"field": "orders_count", "op": ">=", "value": True}, "orders_count is a whole number of orders"),
    ({"field": "total_spent", "op": ">=", "value": "1.001"}, "total_spent is an amount of 0 or more (at most 2 decimals)"),
    ({"field": "total_spent", "op": ">=", "value": "-5"}, "total_spent is an amount of 0 or more"),
    ({"field": "total_spent", "op": ">=", "value": "NaN"}, "total_spent is an amount of 0 or more"),
    ({"field": "total_spent", "op": ">=", "value": "lots"}, "total_spent is an amount of 0 or more"),
    ({"field": "last_order", "op": "within", "value": 0}, "last_order is a whole number of days from 1 to 3,650"),
    ({"field": "first_order", "op": "more_than", "value": 3651}, "first_order is a whole number of days from 1 to 3,650"),
    ({"field": "bought_product", "op": "any", "value": []}, "bought_product is a list of 1 to 200 product ids"),
    ({"field": "bought_product", "op": "any", "value": " , "}, "bought_product is a list of 1 to 200 product ids"),
    ({"field": "bought_product", "op": "any", "value": [str(n) for n in range(201)]}, "a list of 1 to 200 product ids"),
    ({"field": "bought_product", "op": "any", "value": ["x" * 65]}, "bought_product is a list of 1 to 200 product ids"),
    ({"field": "bought_product", "op": "any", "value": [None]}, "bought_product is a list of 1 to 200 product ids"),
    ({"field": "survey_score", "op": "<=", "value": 6}, "survey_score is a whole number from 1 to 5"),
    ({"field": "survey_score", "op": "<=", "value": 0}, "survey_score is a whole number from 1 to 5"),
    ({"field": "nps", "op": ">=", "value": 11}, "nps is a whole number from 0 to 10"),
    ({"field": "consent", "op": "accepts", "value": "post"}, "consent is email or sms"),
    ({"field": "consent", "op": "=", "value": "email"}, "consent takes accepts or refuses, not '='"),
    ({"field": "rfm_segment", "op": "any", "value": ["champions", "heroes"]}, "rfm_segment is a list of RFM segments"),
    ("orders_count >= 2", "a field, an operator and a value"),
])
def test_a_bad_rule_is_named_with_what_is_wrong(rule: Any, message: str) -> None:
    [(field, text)] = problems({"rules": [{"field": "orders_count", "op": ">=", "value": 1}, rule]})
    assert field == "rules.1" and text.startswith("rule 2: ") and message in text


def test_every_problem_at_once() -> None:
    assert problems({"match": "most", "extra": 1, "rules": [
        {"field": "nps", "op": ">=", "value": 11}, {"field": "tier", "op": "any", "value": ["gold"]},
        {"field": "consent", "op": "accepts", "value": "sms"}, {"field": "colour", "op": "=", "value": 1}]},
        tiers=frozenset({"silver"})) == [
        ("match", "match: all (every rule holds) or any (at least one does)"),
        ("rules", "unknown part 'extra' (a segment has match and rules)"),
        ("rules.0", "rule 1: nps is a whole number from 0 to 10"),
        ("rules.1", "rule 2: not a tier of your program: gold"),
        ("rules.3", "rule 4: unknown field 'colour' (one of " + ", ".join(FIELDS) + ")")]


@pytest.mark.parametrize("data", [None, [], "rules", {"rules": []}, {"rules": "x"}, {"match": "all"},
                                  {"rules": [{"field": "nps", "op": ">=", "value": 5}] * 21}])
def test_a_segment_needs_a_list_of_one_to_twenty_rules(data: Any) -> None:
    found = problems(data)
    assert len(found) == 1 and found[0][0] == "rules"


def test_tiers_are_checked_only_against_the_shops_when_given() -> None:
    rule = {"rules": [{"field": "tier", "op": "any", "value": ["gold", "platinum"]}]}
    assert parse(rule).rules[0].value == ("gold", "platinum")
    assert problems(rule, tiers=frozenset({"gold"})) == [("rules.0", "rule 1: not a tier of your program: platinum")]
    assert parse(rule, tiers=frozenset({"gold", "platinum", "silver"})).match == "all"


def test_match_defaults_to_all() -> None:
    assert parse({"rules": [{"field": "nps", "op": ">=", "value": 9}]}) == Rules("all", (Rule("nps", ">=", 9),))
    assert parse({"match": "any", "rules": [{"field": "nps", "op": ">=", "value": 9}]}).match == "any"
    assert Problem(None, "x").field == "rules"


RULES = st.one_of(
    st.builds(lambda op, v: {"field": "orders_count", "op": op, "value": v}, st.sampled_from([">=", "<=", "="]),
              st.integers(0, 1_000_000)),
    st.builds(lambda op, v: {"field": "total_spent", "op": op, "value": str(v)}, st.sampled_from([">=", "<="]),
              st.decimals(0, 10_000, places=2)),
    st.builds(lambda f, op, v: {"field": f, "op": op, "value": v}, st.sampled_from(["last_order", "first_order"]),
              st.sampled_from(["within", "more_than"]), st.integers(1, 3650)),
    st.builds(lambda f, v: {"field": f, "op": "any", "value": v}, st.sampled_from(["bought_product", "tier"]),
              st.lists(st.text("abc123-", min_size=1, max_size=8), min_size=1, max_size=5)),
    st.builds(lambda v: {"field": "rfm_segment", "op": "any", "value": v},
              st.lists(st.sampled_from(RFM_LABELS), min_size=1, max_size=4)),
    st.builds(lambda op, v: {"field": "consent", "op": op, "value": v}, st.sampled_from(["accepts", "refuses"]),
              st.sampled_from(["email", "sms"])),
)


@given(st.sampled_from(["all", "any"]), st.lists(RULES, min_size=1, max_size=20))
def test_rules_read_back_equal_from_their_data(match: str, rules: list[dict[str, Any]]) -> None:
    parsed = parse({"match": match, "rules": rules})
    assert parse(parsed.to_data()) == parsed
    assert len(parsed.rules) == len(rules) and parsed.fields() <= set(FIELDS)
