"""The JSON API behind the admin's journeys page: the library with its figures, switching a journey on and off,
editing it (a new version each save), live preview and test sends with sample data, what each journey did
(figures) and would have done (simulation), and the shop's messaging settings. Every route is scoped to the
shop of the session token."""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import dispatch, rendering, segments, shops, tiers
from app import figures as fig
from app import journeys as jr
from app import simulate as sim
from app.bootstrap import Container
from app.channels import ChannelNotConfigured
from app.core.journeys import Channel, Condition, Incentive, Journey, Step, to_data
from app.core.ports import OutboundMessage
from app.db import models as t
from app.web.auth import session_token_required

bp = Blueprint("journeys", __name__)
log = structlog.get_logger(__name__)

UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
FIGURE_DAYS = 30
Problem = dict[str, Any]


def _c() -> Container:
    c: Container = current_app.extensions["encore"]
    return c


def _shop(s: Session) -> t.Shop:
    shop = s.get(t.Shop, g.shop_id)
    assert shop is not None  # the session token named an installed shop
    return shop


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "a JSON object is expected")
    return body


def _problem(message: str, *, step: str | None = None, field: str | None = None, line: int | None = None) -> Problem:
    return {"step": step, "field": field, "line": line, "message": message}


def _invalid(problems: list[Problem]) -> tuple[Response, int]:
    return jsonify(error="; ".join(p["message"] for p in problems), problems=problems), 400


def _meta(key: str) -> dict[str, str]:
    try:
        item = rendering.journey(key)
    except KeyError:  # a journey of the shop's own, not from the library
        return {"title": key.replace("_", " ").capitalize(), "description": ""}
    return {"title": item.title, "description": item.description}


def _live(s: Session, key: str) -> jr.Version:
    version = jr.live(s, g.shop_id, key)
    if version is None:
        abort(404, f"no journey {key!r}")
    return version


def _locale(value: object, fallback: str) -> str:
    if value in (None, ""):
        return fallback
    if not isinstance(value, str) or not LOCALE.match(value) or len(value) > 16:
        abort(400, "locale is a language tag such as en, ko or ja-JP")
    return value


# --- the library and one journey -------------------------------------------------------------------------------


def _summary(version: jr.Version, figures_of: dict[str, Any]) -> dict[str, Any]:
    journey = version.journey
    return {"key": version.key, **_meta(version.key), "category": journey.category.value, "trigger": journey.trigger,
            "date_rule": journey.trigger in jr.DATE_RULES, "enabled": version.enabled, "version": journey.version,
            "definition": to_data(journey), "figures": figures_of}


@bp.get("/api/admin/journeys")
@session_token_required
def library() -> Response:
    c, since = _c(), datetime.now(UTC) - timedelta(days=FIGURE_DAYS)
    try:
        with c.sessions() as s, s.begin():
            jr.install_defaults(s, g.shop_id)
    except IntegrityError:  # another request (a second tab) installed them at the same moment
        log.info("journeys.install_raced", shop_id=g.shop_id)
    with c.sessions() as s:
        versions = jr.all_live(s, g.shop_id)
        found = fig.figures(s, g.shop_id, [v.journey_id for v in versions], since)
        return jsonify(days=FIGURE_DAYS, journeys=[_summary(v, found[v.journey_id]) for v in versions])


@bp.post("/api/admin/journeys/<key>/enabled")
@session_token_required
def enabled(key: str) -> Response:
    on = _body().get("enabled")
    if not isinstance(on, bool):
        abort(400, "enabled is true or false")
    if not jr.set_enabled(_c(), g.shop_id, key, on):
        abort(404, f"no journey {key!r}")
    return jsonify(key=key, enabled=on)


def _span(value: timedelta | None) -> dict[str, Any] | None:
    if value is None:
        return None
    seconds = int(value.total_seconds())
    unit = next((u for u in ("days", "hours") if seconds and seconds % UNITS[u] == 0), "minutes")
    return {"value": seconds // UNITS[unit], "unit": unit}


def _step_data(version: jr.Version, step: Step) -> dict[str, Any]:
    c, i = step.condition, step.incentive
    source = jr.template_for(version, step)
    return {
        "key": step.key, "template": step.template, "delay": _span(step.delay), "after": step.after,
        "wait_for": step.wait_for, "send_at": step.send_at.strftime("%H:%M") if step.send_at else None,
        "latest": _span(step.latest), "channel": step.channel.value,
        "condition": {"customer": "any" if c is None or c.first_order is None else "first" if c.first_order else "repeat",
                      "min_total": None if c is None or c.min_total is None else str(c.min_total),
                      "max_total": None if c is None or c.max_total is None else str(c.max_total),
                      "products": sorted(c.any_product) if c else [], "collections": sorted(c.any_collection) if c else [],
                      "segments": sorted(c.any_segment) if c else [], "tiers": sorted(c.any_tier) if c else []},
        "incentive": {"kind": i.kind if i else "none", "value": str(i.value) if i else "",
                      "days": int(i.expires_after.total_seconds() // 86400) if i else 30},
        "default": version.templates.get(step.key) is None, "source": _parts(source),
        "default_source": _parts(rendering.default_template(step.template)) if step.template in jr.DEFAULTS else None,
    }


def _parts(source: rendering.TemplateSource) -> dict[str, str]:
    return {"subject": source.subject, "html": source.html, "text": source.text, "sms": source.sms}


@bp.get("/api/admin/journeys/<key>")
@session_token_required
def journey(key: str) -> Response:
    with _c().sessions() as s:
        version, shop = _live(s, key), _shop(s)
        j = version.journey
        return jsonify(**_summary(version, {}), language=rendering.language_of(shop.locale), locale=shop.locale,
                       holdout_percent=j.holdout_percent, attribution_days=j.attribution.days,
                       steps=[_step_data(version, st) for st in j.steps])


def _int(value: object, low: int, high: int) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high else None


def _read_span(raw: object, name: str, step: str, problems: list[Problem], *, optional: bool) -> timedelta | None:
    if raw is None and optional:
        return None
    if isinstance(raw, dict) and raw.get("unit") in UNITS:
        value = _int(raw.get("value"), 0, 366 * 86400 // UNITS[str(raw["unit"])])
        if value is not None:
            return timedelta(seconds=value * UNITS[str(raw["unit"])])
    problems.append(_problem(f"{name}: a whole number (0 or more) of minutes, hours or days", step=step, field=name))
    return None


def _money(raw: object, name: str, step: str, problems: list[Problem]) -> Decimal | None:
    if raw in (None, ""):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0 or isinstance(raw, bool):
        problems.append(_problem(f"{name}: an amount of 0 or more", step=step, field=name))
        return None
    return value


def _ids(raw: object, name: str, step: str, problems: list[Problem]) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or len(raw) > 200 or not all(isinstance(x, str) and 0 < len(x.strip()) <= 64 for x in raw):
        problems.append(_problem(f"{name}: a list of ids or handles (at most 200)", step=step, field=name))
        return frozenset()
    return frozenset(x.strip() for x in raw)


def _read_step(step: Step, raw: dict[str, Any], category: str, problems: list[Problem]
               ) -> tuple[Step, rendering.TemplateSource | None]:
    k = step.key
    delay = _read_span(raw.get("delay"), "delay", k, problems, optional=False) or timedelta(0)
    latest = _read_span(raw.get("latest"), "latest", k, problems, optional=True)
    send_at = raw.get("send_at")
    if send_at not in (None, "") and not (isinstance(send_at, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", send_at)):
        problems.append(_problem("send_at: a local time such as 10:00", step=k, field="send_at"))
        send_at = None
    channel = raw.get("channel", step.channel.value)
    if channel not in {ch.value for ch in Channel}:
        problems.append(_problem("channel: email, sms, webhook or preferred", step=k, field="channel"))
        channel = step.channel.value
    cond = raw.get("condition") or {}
    who = cond.get("customer", "any") if isinstance(cond, dict) else None
    if who not in ("any", "first", "repeat") or not isinstance(cond, dict):
        problems.append(_problem("condition: any, first or repeat customers", step=k, field="condition"))
        cond, who = {}, "any"
    low, high = (_money(cond.get(n), n, k, problems) for n in ("min_total", "max_total"))
    if low is not None and high is not None and low > high:
        problems.append(_problem("min_total: above max_total", step=k, field="min_total"))
    old = step.condition or Condition()
    condition = Condition(first_order=None if who == "any" else who == "first", min_total=low, max_total=high,
                          any_product=_ids(cond.get("products"), "products", k, problems),
                          any_collection=_ids(cond.get("collections"), "collections", k, problems),
                          any_segment=_ids(cond["segments"], "segments", k, problems) if "segments" in cond else old.any_segment,
                          any_tier=_ids(cond["tiers"], "tiers", k, problems) if "tiers" in cond else old.any_tier)
    inc = raw.get("incentive") or {"kind": "none"}
    incentive = None
    if not isinstance(inc, dict) or inc.get("kind") not in ("none", "percent", "amount", "free_shipping"):
        problems.append(_problem("incentive: none, percent, amount or free_shipping", step=k, field="incentive"))
    elif inc["kind"] != "none":
        days = _int(inc.get("days", 30), 1, 365)
        if days is None:
            problems.append(_problem("days valid: from 1 to 365", step=k, field="incentive.days"))
        value = _money(inc.get("value") or "0", "incentive.value", k, problems) or Decimal(0)
        incentive = Incentive(str(inc["kind"]), value, timedelta(days=days or 30))
    template = None
    own = raw.get("template")
    if isinstance(own, dict):
        parts = {p: own.get(p, "") for p in rendering.PARTS}
        if not all(isinstance(v, str) for v in parts.values()):
            problems.append(_problem("template: four texts (subject, html, text, sms)", step=k, field="template"))
        else:
            template = rendering.TemplateSource(**parts, category=category, journey=step.template)  # type: ignore[arg-type]
    elif own is not None:
        problems.append(_problem("template: the four parts, or null for the default copy", step=k, field="template"))
    return replace(step, delay=delay, latest=latest, send_at=time.fromisoformat(send_at) if send_at else None,
                   channel=Channel(channel), condition=None if condition == Condition() else condition,
                   incentive=incentive), template


def read_edit(version: jr.Version, body: dict[str, Any], language: str
              ) -> tuple[Journey, dict[str, rendering.TemplateSource | None], list[Problem]]:
    """The edited journey and its templates from the editor's JSON, and every problem with it (templates checked
    in the sandbox with sample data: each problem with its part and line)."""
    journey, problems = version.journey, []
    holdout = _int(body.get("holdout_percent", journey.holdout_percent), 0, 50)
    if holdout is None:
        problems.append(_problem("holdout: a whole percentage from 0 to 50", field="holdout_percent"))
    window = _int(body.get("attribution_days", journey.attribution.days), 1, 90)
    if window is None:
        problems.append(_problem("attribution window: from 1 to 90 days", field="attribution_days"))
    given = body.get("steps", [])
    if not isinstance(given, list) or not all(isinstance(x, dict) for x in given):
        problems.append(_problem("steps: a list of the journey's steps", field="steps"))
        given = []
    by_key = {str(x.get("key")): x for x in given}
    for unknown in sorted(set(by_key) - {st.key for st in journey.steps}):
        problems.append(_problem(f"no step {unknown!r} in this journey", step=unknown))
    steps, templates = [], {}
    for step in journey.steps:
        raw = by_key.get(step.key)
        if raw is None:
            steps.append(step)
            templates[step.key] = version.templates.get(step.key)
            continue
        edited, template = _read_step(step, raw, journey.category.value, problems)
        steps.append(edited)
        templates[step.key] = template
        if template is not None:
            problems += [_problem(p.message, step=step.key, field=p.part, line=p.line)
                         for p in rendering.validate(template, language)]
    edited_journey = replace(journey, steps=tuple(steps), holdout_percent=journey.holdout_percent if holdout is None
                             else holdout, attribution=timedelta(days=window) if window else journey.attribution)
    problems += [_problem(p) for p in jr.check(edited_journey, {k: None for k in templates}, language)]
    return edited_journey, templates, problems


def _target_problems(journey: Journey, segment_keys: frozenset[str], tier_keys: frozenset[str]) -> list[Problem]:
    problems = []
    for step in journey.steps:
        c = step.condition or Condition()
        if c.any_segment - segment_keys:
            problems.append(_problem(f"segments: no segment {', '.join(sorted(c.any_segment - segment_keys))} in your store",
                                     step=step.key, field="segments"))
        if c.any_tier - tier_keys:
            problems.append(_problem(f"tiers: no tier {', '.join(sorted(c.any_tier - tier_keys))} in your loyalty program",
                                     step=step.key, field="tiers"))
    return problems


@bp.put("/api/admin/journeys/<key>")
@session_token_required
def save(key: str) -> Response | tuple[Response, int]:
    body, c = _body(), _c()
    with c.sessions() as s:
        version, language = _live(s, key), rendering.language_of(_shop(s).locale)
    edited, templates, problems = read_edit(version, body, language)
    with c.sessions() as s:  # a condition names the shop's own segments and tiers
        problems += _target_problems(edited, segments.known_keys(s, g.shop_id),
                                     frozenset(x.key for x in tiers.tiers_of(s, g.shop_id)))
    if problems:
        return _invalid(problems)
    try:
        saved = jr.save_version(c, g.shop_id, key, edited, templates, language=language)
    except jr.InvalidJourney as exc:
        return _invalid([_problem(p) for p in exc.problems])
    return jsonify(key=key, version=saved.journey.version, definition=to_data(saved.journey))


def _source(version: jr.Version, body: dict[str, Any]) -> tuple[Step, rendering.TemplateSource]:
    step = next((st for st in version.journey.steps if st.key == body.get("step", version.journey.steps[0].key)), None)
    if step is None:
        abort(400, "no such step in this journey")
    own = body.get("template")
    if own is None:
        return step, jr.template_for(version, step)
    if not isinstance(own, dict) or not all(isinstance(own.get(p, ""), str) for p in rendering.PARTS):
        abort(400, "template: the four parts as texts, or null for the live copy")
    return step, rendering.TemplateSource(**{p: own.get(p, "") for p in rendering.PARTS},
                                          category=version.journey.category.value, journey=step.template)


def _template_problems(step: Step, found: list[rendering.TemplateProblem]) -> list[Problem]:
    return [_problem(p.message, step=step.key, field=p.part, line=p.line) for p in found]


@bp.post("/api/admin/journeys/<key>/preview")
@session_token_required
def preview(key: str) -> Response | tuple[Response, int]:
    body = _body()
    with _c().sessions() as s:
        version, fallback = _live(s, key), _shop(s).locale
    step, source = _source(version, body)
    locale = _locale(body.get("locale"), fallback)
    problems = _template_problems(step, rendering.validate(source, locale)) if body.get("template") else []
    if problems:
        return _invalid(problems)
    try:
        shown = rendering.preview(source, locale)
    except rendering.RenderError as exc:
        return _invalid(_template_problems(step, [exc.problem]))
    return jsonify(step=step.key, locale=locale, **asdict(shown))


@bp.post("/api/admin/journeys/<key>/test")
@session_token_required
def test_send(key: str) -> Response | tuple[Response, int]:
    body, c = _body(), _c()
    with c.sessions() as s:
        version, shop = _live(s, key), _shop(s)
        messaging, fallback = jr.Messaging.of(shop), shop.locale
    step, source = _source(version, body)
    to = body.get("to") or messaging.support_email
    if not isinstance(to, str) or not EMAIL.match(to):
        abort(400, "to: an email address")
    sample = rendering.sample_context(_locale(body.get("locale"), fallback))
    try:
        shown = rendering.render(source, sample)
        channel = dispatch.build(c).channels["email"]
    except rendering.RenderError as exc:
        return _invalid(_template_problems(step, [exc.problem]))
    except ChannelNotConfigured as exc:
        return jsonify(status="error", to=to, error=str(exc)), 502
    if not shown.html.strip() and not shown.text.strip():  # the sender's own fault, not the channel's: 400, not 502
        return _invalid([_problem("template: an email needs an HTML or a text part", step=step.key, field="template")])
    marketing = version.journey.category.value == "marketing"
    message = OutboundMessage(
        shop_id=g.shop_id, key=f"test:{key}:{step.key}:{uuid.uuid4().hex}", channel="email", to=to,
        subject=f"[Test] {shown.subject}", html=shown.html, text=shown.text, sender_name=messaging.sender_name,
        sender_address=messaging.sender_address, reply_to=messaging.reply_to or messaging.support_email,
        unsubscribe_url=sample.links.unsubscribe if marketing else None,
        category="marketing" if marketing else "transactional",
        metadata={"journey": key, "step": step.key, "test": True})
    result = channel.send(message)
    log.info("journey.test_send", shop_id=g.shop_id, journey=key, outcome=result.outcome)
    if result.outcome != "sent":
        return jsonify(status="error", to=to, key=message.key, error=result.error or result.reason), 502
    return jsonify(status="sent", to=to, key=message.key, provider_id=result.provider_id, subject=message.subject)


@bp.get("/api/admin/journeys/<key>/figures")
@session_token_required
def journey_figures(key: str) -> Response:
    days = request.args.get("days", FIGURE_DAYS, type=int)
    if days is None or not 1 <= days <= 365:
        abort(400, "days: from 1 to 365")
    since = datetime.now(UTC) - timedelta(days=days)
    with _c().sessions() as s:
        version = _live(s, key)
        return jsonify(key=key, days=days, since=since.isoformat(),
                       **fig.figures(s, g.shop_id, [version.journey_id], since)[version.journey_id],
                       **fig.details(s, g.shop_id, version.journey_id, since))


@bp.post("/api/admin/messages/<int:message_id>/resend")
@session_token_required
def resend(message_id: int) -> Response:
    if not dispatch.resend(_c(), g.shop_id, message_id):
        abort(404, "no failed or parked message with that id")
    return jsonify(id=message_id, status="pending")


def _collections(c: Container, shop_id: int) -> Any:
    """The store's collections of products, for a condition that names some (nothing when the store is down)."""
    def lookup(product_ids: list[str]) -> frozenset[str]:
        try:
            found = shops.store_platform(c, shop_id).product_collections(product_ids)
        except Exception as exc:  # the simulation goes on as the dispatcher would without a store connection
            log.warning("simulate.collections_failed", shop_id=shop_id, error=f"{type(exc).__name__}: {exc}")
            return frozenset()
        return frozenset().union(*found.values()) if found else frozenset()
    return lookup


@bp.get("/api/admin/journeys/<key>/simulate")
@session_token_required
def simulate(key: str) -> Response:
    days = request.args.get("days", 7, type=int)
    if days is None or not 1 <= days <= sim.MAX_DAYS:
        abort(400, f"days: from 1 to {sim.MAX_DAYS}")
    c = _c()
    try:
        found = sim.simulate(c, g.shop_id, key, days=days, collections=_collections(c, g.shop_id))
    except LookupError:
        abort(404, f"no journey {key!r}")
    rows = [{**asdict(r), "trigger_at": r.trigger_at.isoformat(),
             "planned_at": r.planned_at.isoformat() if r.planned_at else None,
             "send_at": r.send_at.isoformat() if r.send_at else None} for r in found.rows]
    return jsonify(key=key, version=found.version, trigger=found.trigger, days=days, start=found.start.isoformat(),
                   end=found.end.isoformat(), unsupported=found.unsupported, truncated=found.truncated, rows=rows)


# --- the shop's messaging settings -----------------------------------------------------------------------------

TEXTS = ("sender_name", "sender_address", "support_email", "reply_to", "webhook_url", "quiet_start", "quiet_end",
         "over_cap")


def _messaging_problem(changes: dict[str, Any]) -> str | None:
    for name, value in changes.items():
        if name not in jr.Messaging.__dataclass_fields__:
            return f"unknown setting {name!r}"
        if name in ("per_day", "per_week") and _int(value, 0, 100) is None:
            return f"{name}: a whole number from 0 to 100"
        if name in TEXTS and (not isinstance(value, str) or len(value) > 255):
            return f"{name}: a text of at most 255 characters"
        if name in ("sender_address", "support_email", "reply_to") and value and not EMAIL.match(value):
            return f"{name}: an email address"
        if name in ("quiet_start", "quiet_end") and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            return f"{name}: a time such as 21:00"
        if name == "webhook_url" and value and not re.match(r"^https?://[^\s/]+", value):
            return "webhook_url: an http(s) address"
    return None


@bp.get("/api/admin/messaging")
@session_token_required
def messaging() -> Response:
    with _c().sessions() as s:  # the signing secret lets the merchant's endpoint verify Encore's webhooks
        return jsonify({**asdict(jr.Messaging.of(_shop(s))), "webhook_secret": dispatch.webhook_secret(_c(), g.shop_id)})


@bp.put("/api/admin/messaging")
@session_token_required
def save_messaging() -> Response | tuple[Response, int]:
    changes = _body()
    problem = _messaging_problem(changes)
    if problem is None:
        try:
            return jsonify(asdict(jr.save_messaging(_c(), g.shop_id, changes)))
        except (ValueError, TypeError) as exc:
            problem = str(exc)
    return jsonify(error=problem), 400
