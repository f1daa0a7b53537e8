"""Segment rules as plain data: what a merchant's segment says, read and checked before anything is saved.

A segment's rules are `{"match": "all" | "any", "rules": [{"field": ..., "op": ..., "value": ...}, ...]}`.
Every rule is about one customer:

    orders_count       >=, <=, =        a whole number: paid orders that were not cancelled
    total_spent        >=, <=           money in the shop's currency: those orders' totals less their refunds
    last_order         within, more_than  days: the last such order was within N days / more than N days ago
    first_order        within, more_than  days: the first such order was within N days / more than N days ago
    bought_product     any              product ids: one of them was in such an order
    bought_collection  any              collection handles (category slugs on WooCommerce): bought from one
    tier               any              VIP tier keys: the customer's tier now is one of them
    survey_score       <=, >=           1-5: the customer's latest satisfaction answer
    nps                <=, >=           0-10: the customer's latest "would you recommend us" answer
    consent            accepts, refuses  email or sms: takes marketing by that channel (the store's consent and
                                        Encore's own unsubscribes together)
    rfm_segment        any              RFM labels (app.core.rfm): the customer's segment at the last refresh

`parse` reads the whole of it and raises `InvalidSegment` with one message per bad rule (an unknown field, an
operator the field does not take, a value it cannot hold), so a merchant sees every problem at once and nothing
is saved. The database layer (`app.segments`) compiles parsed rules to one SQL query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from app.core.rfm import RFM_LABELS

MATCHES = ("all", "any")
MAX_RULES = 20
MAX_IDS = 200
MAX_DAYS = 3650
MAX_ORDERS = 1_000_000
MAX_MONEY = Decimal("1000000000")
CHANNELS = ("email", "sms")
KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # a segment's key: what journey conditions name


@dataclass(frozen=True)
class Field:
    ops: tuple[str, ...]
    kind: str  # count / money / days / ids / score / nps / channel / labels: how the value is read
    what: str  # the value as a merchant would describe it, for messages


FIELDS: dict[str, Field] = {
    "orders_count": Field((">=", "<=", "="), "count", f"a whole number of orders from 0 to {MAX_ORDERS:,}"),
    "total_spent": Field((">=", "<="), "money", "an amount of 0 or more (at most 2 decimals)"),
    "last_order": Field(("within", "more_than"), "days", f"a whole number of days from 1 to {MAX_DAYS:,}"),
    "first_order": Field(("within", "more_than"), "days", f"a whole number of days from 1 to {MAX_DAYS:,}"),
    "bought_product": Field(("any",), "ids", f"a list of 1 to {MAX_IDS} product ids"),
    "bought_collection": Field(("any",), "ids", f"a list of 1 to {MAX_IDS} collection handles"),
    "tier": Field(("any",), "ids", f"a list of 1 to {MAX_IDS} tier keys"),
    "survey_score": Field(("<=", ">="), "score", "a whole number from 1 to 5"),
    "nps": Field(("<=", ">="), "nps", "a whole number from 0 to 10"),
    "consent": Field(("accepts", "refuses"), "channel", "email or sms"),
    "rfm_segment": Field(("any",), "labels", "a list of RFM segments (" + ", ".join(RFM_LABELS) + ")"),
}

Value = int | Decimal | str | tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    field: str
    op: str
    value: Value  # int (count, days, score, nps), Decimal (money), str (channel), sorted tuple (ids, labels)


@dataclass(frozen=True)
class Rules:
    match: str
    rules: tuple[Rule, ...]

    def fields(self) -> frozenset[str]:
        return frozenset(r.field for r in self.rules)

    def to_data(self) -> dict[str, object]:
        """JSON-ready; `parse` reads it back equal."""
        def plain(v: Value) -> object:
            return str(v) if isinstance(v, Decimal) else list(v) if isinstance(v, tuple) else v

        return {"match": self.match, "rules": [{"field": r.field, "op": r.op, "value": plain(r.value)}
                                               for r in self.rules]}


@dataclass(frozen=True)
class Problem:
    rule: int | None  # the rule's place in the list (0-based), None for the segment as a whole
    message: str
    field: str = "rules"  # what the message is about: rules.<n>, match, rules (or name, key in the app's checks)


class InvalidSegment(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def _whole(raw: object, low: int, high: int) -> int | None:
    if isinstance(raw, str) and re.fullmatch(r"\s*\d{1,10}\s*", raw):
        raw = int(raw)
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and low <= raw <= high else None


def _money(raw: object) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, int | str | float):
        return None
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        return None
    if not value.is_finite() or not 0 <= value <= MAX_MONEY or -int(value.as_tuple().exponent) > 2:
        return None
    return value


def _ids(raw: object) -> tuple[str, ...] | None:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(x, str | int) and not isinstance(x, bool) for x in items):
        return None
    found = {str(x).strip() for x in items if str(x).strip()}
    if not 0 < len(found) <= MAX_IDS or any(len(x) > 64 for x in found):
        return None
    return tuple(sorted(found))


def _value(field: Field, raw: object) -> Value | None:
    if field.kind == "count":
        return _whole(raw, 0, MAX_ORDERS)
    if field.kind == "days":
        return _whole(raw, 1, MAX_DAYS)
    if field.kind == "score":
        return _whole(raw, 1, 5)
    if field.kind == "nps":
        return _whole(raw, 0, 10)
    if field.kind == "money":
        return _money(raw)
    if field.kind == "channel":
        return raw if isinstance(raw, str) and raw in CHANNELS else None
    found = _ids(raw)
    if field.kind == "labels" and found is not None and not set(found) <= set(RFM_LABELS):
        return None
    return found


def _rule(i: int, raw: object, tiers: frozenset[str] | None) -> Rule | Problem:
    def bad(message: str) -> Problem:
        return Problem(i, f"rule {i + 1}: {message}", f"rules.{i}")

    if not isinstance(raw, dict):
        return bad("a field, an operator and a value")
    name, op = raw.get("field"), raw.get("op")
    field = FIELDS.get(name) if isinstance(name, str) else None
    if field is None:
        return bad(f"unknown field {name!r} (one of {', '.join(FIELDS)})")
    if op not in field.ops:
        return bad(f"{name} takes {' or '.join(field.ops)}, not {op!r}")
    value = _value(field, raw.get("value"))
    if value is None:
        return bad(f"{name} is {field.what}")
    if name == "tier" and tiers is not None and isinstance(value, tuple) and not set(value) <= tiers:
        return bad(f"not a tier of your program: {', '.join(sorted(set(value) - tiers))}")
    return Rule(str(name), str(op), value)


def parse(data: object, *, tiers: frozenset[str] | None = None) -> Rules:
    """The segment's rules, checked; InvalidSegment with every problem otherwise. With `tiers` (the shop's tier
    keys), a tier rule naming another key is a problem too."""
    if not isinstance(data, dict):
        raise InvalidSegment([Problem(None, "rules: {\"match\": \"all\" or \"any\", \"rules\": [...]}")])
    problems: list[Problem] = []
    match = data.get("match", "all")
    if match not in MATCHES:
        problems.append(Problem(None, "match: all (every rule holds) or any (at least one does)", "match"))
    given = data.get("rules")
    if not isinstance(given, list) or not 0 < len(given) <= MAX_RULES:
        problems.append(Problem(None, f"rules: a list of 1 to {MAX_RULES} rules"))
        given = []
    for unknown in sorted(set(data) - {"match", "rules"}):
        problems.append(Problem(None, f"unknown part {unknown!r} (a segment has match and rules)"))
    read = [_rule(i, raw, tiers) for i, raw in enumerate(given)]
    problems += [p for p in read if isinstance(p, Problem)]
    if problems:
        raise InvalidSegment(problems)
    return Rules(str(match), tuple(r for r in read if isinstance(r, Rule)))


__all__ = ["FIELDS", "KEY", "MATCHES", "InvalidSegment", "Problem", "Rule", "Rules", "parse"]
