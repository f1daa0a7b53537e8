"""Inbound SMS: Twilio's X-Twilio-Signature on Twilio's own published vectors, and the STOP/START/HELP keywords;
and how the Messages API's answers are read."""

from __future__ import annotations

import pytest

from app.channels.sms import classify_response, inbound_sms, keyword_action, twilio_signature, valid_twilio_signature

# Twilio's own test vectors: twilio/twilio-python, tests/unit/test_request_validator.py (ValidationTest.setUp and
# the test_validation_* / test_compute_signature_duplicate_* cases).
TOKEN = "12345"
URI = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309", "To": "+18005551212",
          "Caller": "+14158675309"}
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_twilios_published_signature() -> None:
    assert twilio_signature(TOKEN, URI, PARAMS) == EXPECTED
    assert valid_twilio_signature(TOKEN, URI, PARAMS, EXPECTED)


def test_twilios_published_signature_with_repeated_parameters() -> None:
    pairs = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    assert twilio_signature(TOKEN, URI, pairs) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize("uri, signature", [
    (URI.replace(".com", ".com:1234"), EXPECTED),  # test_validation_removes_port_on_https
    (URI.replace(".com", ".com:1234").replace("https", "http"), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),  # ..._on_http
    (URI, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # test_validation_adds_port_on_https (signed with :443)
    (URI.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # test_validation_adds_port_on_http (:80)
])
def test_twilios_published_port_variants(uri: str, signature: str) -> None:
    assert valid_twilio_signature(TOKEN, uri, PARAMS, signature)


@pytest.mark.parametrize("change", ["token", "url", "param", "extra", "signature"])
def test_anything_changed_fails_the_signature(change: str) -> None:
    token, uri, params, signature = TOKEN, URI, dict(PARAMS), EXPECTED
    if change == "token":
        token = "12346"
    elif change == "url":
        uri = URI.replace("foo=1", "foo=2")
    elif change == "param":
        params["Digits"] = "1235"
    elif change == "extra":
        params["Body"] = "STOP"
    else:
        signature = EXPECTED[:-2] + "A="
    assert not valid_twilio_signature(token, uri, params, signature)
    assert not valid_twilio_signature(TOKEN, URI, PARAMS, None)
    assert not valid_twilio_signature("", URI, PARAMS, twilio_signature("", URI, PARAMS))


def test_a_rotated_secondary_token_still_verifies() -> None:
    assert valid_twilio_signature(("new-token", TOKEN), URI, PARAMS, EXPECTED)
    assert not valid_twilio_signature(("new-token", "other"), URI, PARAMS, EXPECTED)


@pytest.mark.parametrize("body, action", [
    *[(word, "opt_out") for word in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE")],
    *[(word, "opt_in") for word in ("START", "YES", "UNSTOP")],
    ("HELP", "help"), ("info", "help"),
    ("stop", "opt_out"), ("  Stop.  ", "opt_out"), ("STOP!", "opt_out"), ("unstop", "opt_in"),
    ("stop texting me", "message"), ("please stop", "message"), ("STOPPED", "message"), ("", "message"),
    ("Thanks, got it", "message"),
])
def test_keywords(body: str, action: str) -> None:
    assert keyword_action(body)[0] == action


def test_an_inbound_stop_is_an_opt_out_for_the_sender() -> None:
    url = "https://encore.example/sms/inbound"
    params = {"MessageSid": "SM1", "AccountSid": "AC1", "From": "+821012345678", "To": "+15005550006", "Body": "Stop"}
    decision = inbound_sms("token", url, params, twilio_signature("token", url, params))
    assert decision is not None
    assert (decision.action, decision.keyword, decision.from_number, decision.to_number) == (
        "opt_out", "STOP", "+821012345678", "+15005550006")
    assert inbound_sms("token", url, params, twilio_signature("other", url, params)) is None
    assert inbound_sms("token", url, {**params, "From": "+821099999999"}, twilio_signature("token", url, params)) is None


def test_advanced_opt_out_type_wins_over_the_default_keywords() -> None:
    url = "https://encore.example/sms/inbound"
    params = {"From": "+15551234567", "Body": "ARRET", "OptOutType": "STOP"}  # a merchant's custom keyword
    decision = inbound_sms("t", url, params, twilio_signature("t", url, params))
    assert decision is not None and decision.action == "opt_out"


@pytest.mark.parametrize("status, body, header, outcome, reason, retry_after", [
    (201, {"sid": "SM123", "status": "queued"}, None, "sent", None, None),
    (429, {"code": 20429, "message": "Too Many Requests"}, "12", "retry", "rate_limited", 12.0),
    (503, {}, None, "retry", "unavailable", None),
    (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}, None, "failed", "unsubscribed", None),
    (400, {"code": 21211, "message": "Invalid 'To' Phone Number"}, None, "failed", "invalid_recipient", None),
    (400, {"code": 21614, "message": "not a valid mobile number"}, None, "failed", "invalid_recipient", None),
    (401, {"code": 20003, "message": "Authenticate"}, None, "failed", "auth", None),
    (400, {"code": 21606, "message": "The From phone number is not valid"}, None, "failed", "config", None),
    (400, {"code": 21617, "message": "body exceeds the 1600 character limit"}, None, "failed", "rejected", None),
])
def test_the_messages_api_answers(status: int, body: dict[str, object], header: str | None, outcome: str,
                                  reason: str | None, retry_after: float | None) -> None:
    result = classify_response(status, body, header)
    assert (result.outcome, result.reason, result.retry_after) == (outcome, reason, retry_after)
    if outcome == "sent":
        assert result.provider_id == "SM123"
    elif "code" in body:
        assert result.code == str(body["code"])
