"""The survey routing rules (app/core/feedback.py), pure: what is low and why, what is high, that no answer can
be both under any thresholds the settings accept, and settings checked with every problem reported at once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.feedback import MAX_EMAILS, InvalidRouting, Routing, routing_from, stored


def test_the_defaults_are_the_issues_thresholds() -> None:
    r = Routing()
    low = {(score, nps): r.low(score, nps) for score in range(1, 6) for nps in range(0, 11)}
    assert low[(2, 7)] == "low_satisfaction" and low[(3, 6)] == "detractor" and low[(1, 0)] == "both"
    assert low[(3, 7)] is None and low[(5, 10)] is None
    assert {k for k, v in low.items() if v} == {(s, n) for s in range(1, 6) for n in range(0, 11) if s <= 2 or n <= 6}
    high = {(s, n) for s in range(1, 6) for n in range(0, 11) if r.high(s, n)}
    assert high == {(s, n) for s in (4, 5) for n in (9, 10)}
    assert r.low(2, None) == "low_satisfaction" and r.low(3, None) is None  # an answer from before NPS was asked
    assert not r.high(5, None)  # nor is one praise enough to invite
    assert not r.alerts and Routing(emails=("ops@example.com",)).alerts and Routing(webhook_url="https://x.example").alerts


@given(low_s=st.integers(1, 4), high_s=st.integers(2, 5), low_n=st.integers(0, 9), high_n=st.integers(1, 10),
       score=st.integers(1, 5), nps=st.integers(0, 10))
def test_no_answer_is_both_low_and_high_under_settings_that_pass(low_s: int, high_s: int, low_n: int, high_n: int,
                                                                  score: int, nps: int) -> None:
    data = {"low_satisfaction": low_s, "high_satisfaction": high_s, "low_nps": low_n, "high_nps": high_n}
    try:
        r = routing_from(data)
    except InvalidRouting as refused:
        assert high_s <= low_s or high_n <= low_n
        assert set(refused.problems) <= {"high_satisfaction", "high_nps"}
        return
    assert not (r.low(score, nps) and r.high(score, nps))
    assert stored(r.data()) == r  # what is saved reads back the same


def test_settings_are_normalised() -> None:
    r = routing_from({"emails": " Ops@Example.com; help@example.com,ops@example.com\n",
                      "webhook_url": " https://hooks.example/x ", "low_satisfaction": "3", "low_nps": 5,
                      "high_satisfaction": 5, "high_nps": "10"})
    assert r == Routing(("ops@example.com", "help@example.com"), "https://hooks.example/x", 3, 5, 5, 10)
    assert routing_from({}) == Routing() == stored(None) == stored({})
    assert routing_from({"emails": ["a@example.com"], "webhook_url": ""}).emails == ("a@example.com",)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidRouting) as refused:
        routing_from({"emails": "ops@example.com, not-an-address", "webhook_url": "ftp://files.example/x",
                      "low_satisfaction": 5, "low_nps": "six", "high_satisfaction": True, "high_nps": 11, "colour": "red"})
    assert set(refused.value.problems) == {"emails", "webhook_url", "low_satisfaction", "low_nps", "high_satisfaction",
                                           "high_nps", "settings"}
    assert "'not-an-address'" in refused.value.problems["emails"] and "colour" in refused.value.problems["settings"]
    too_many = ",".join(f"p{i}@example.com" for i in range(MAX_EMAILS + 1))
    for bad in ({"emails": too_many}, {"emails": 42}, {"webhook_url": 7}, {"webhook_url": "https://" + "x" * 2001},
                {"high_satisfaction": 2, "low_satisfaction": 2}, {"high_nps": 6}):
        with pytest.raises(InvalidRouting):
            routing_from(bad)
    with pytest.raises(InvalidRouting) as not_a_dict:
        routing_from(["emails"])
    assert set(not_a_dict.value.problems) == {"settings"}
