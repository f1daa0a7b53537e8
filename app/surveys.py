"""The satisfaction survey a message links to (library journey `survey`): two questions, "how happy are you with
your order?" (a score from 1 to 5) and "how likely are you to recommend us?" (NPS, 0 to 10), both required, and an
optional comment.

One answer per message: the first inserts the row, answering again changes that same row (never a second one).
The reward the message promised for completing the survey is the discount code already created in the store when
the message was sent (`messages.code`); every answer returns it, the same each time, whatever the scores: an
incentive is for completing a survey, never for a positive answer. A message that does not exist, was never sent,
or whose customer was redacted has no survey (UnknownSurvey); one sent more than OPEN_FOR ago is closed
(SurveyClosed, an UnknownSurvey too). Either way nothing is written.

In the answer's transaction, the answer is routed (`app.feedback.route`): a low one opens (or updates) its
follow-up item for staff, and a high one is recorded as an `OrderPraised` event, once per survey, which the
journeys react to in that same transaction (the review_invite journey asks for a review and, when the referral
program is on, shares the customer's referral link; an answer about no known order invites nobody, there being
nothing to review). Every write commits before it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import feedback, loyalty
from app.core.enrollment import react
from app.core.events import OrderPraised
from app.db.engine import insert_for
from app.db.models import Customer, Enrollment, Message, Order, Shop, SurveyResponse
from app.db.uow import SqlUnitOfWork

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)
SCORES = range(1, 6)  # 1 very unhappy ... 5 very happy
NPS = range(0, 11)  # 0 not at all likely ... 10 extremely likely to recommend the shop
OPEN_FOR = timedelta(days=60)  # a survey link works this long after its message was sent
MAX_COMMENT = 2_000  # characters, once stripped (a browser's CRLF line breaks count as one)
REVIEW_MIN_CHARACTERS = 20  # a written comment this long counts as a review (points for action "review")


class UnknownSurvey(LookupError):
    """No such message, it was never sent, or its customer was redacted."""


class SurveyClosed(UnknownSurvey):
    """The message was sent more than OPEN_FOR ago: its survey link has expired. Says whose survey it was and in
    which language to tell the customer (theirs, else the shop's)."""

    def __init__(self, message: str, shop_name: str, locale: str) -> None:
        super().__init__(message)
        self.shop_name, self.locale = shop_name, locale


class InvalidAnswer(ValueError):
    """A score outside 1..5, an NPS answer outside 0..10, or a comment that is too long. `field` says which:
    "score", "nps" or "comment"."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Answer:
    score: int
    nps: int | None  # None on answers from before NPS was asked
    comment: str | None
    created_at: datetime  # the first answer
    updated_at: datetime  # the last change


@dataclass(frozen=True)
class Survey:
    message_id: int
    shop_id: int
    shop_name: str
    shop_locale: str
    customer_id: str | None
    first_name: str | None
    locale: str | None  # the customer's own, when the store knows it
    order_id: str | None
    order_name: str | None  # as the store shows it, "#1001"; None when the order is not known
    answer: Answer | None  # the current answer, if any


@dataclass(frozen=True)
class Answered:
    survey: Survey  # with the answer just stored
    code: str | None  # the reward the message promised, None when it carried none
    first: bool  # this was the first answer (not a change of an earlier one)


def _whole(value: Any, allowed: range) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in allowed


def _valid(score: Any, nps: Any, comment: str | None) -> tuple[int, int, str | None]:
    if not _whole(score, SCORES):
        raise InvalidAnswer(f"the score must be a whole number from 1 to 5, not {score!r}", "score")
    if not _whole(nps, NPS):
        raise InvalidAnswer(f"the NPS answer must be a whole number from 0 to 10, not {nps!r}", "nps")
    if comment is not None and not isinstance(comment, str):
        raise InvalidAnswer(f"a comment is text, not {type(comment).__name__}", "comment")
    text = (comment or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > MAX_COMMENT:
        raise InvalidAnswer(f"the comment has {len(text)} characters, more than {MAX_COMMENT}", "comment")
    return score, nps, text or None


def _message(s: Session, message_id: int, at: datetime
             ) -> tuple[Message, Shop, Customer | None, str | None, str | None]:
    """The sent message, its shop, its customer (if the store knows them), its order's id and name; the survey
    must still be open at `at`."""
    row = s.execute(select(Message, Shop, Enrollment.order_external_id)
                    .join(Shop, Shop.id == Message.shop_id)
                    .join(Enrollment, Enrollment.id == Message.enrollment_id)
                    .where(Message.id == message_id)).first()
    if row is None:
        raise UnknownSurvey(f"no message {message_id}")
    message, shop, order_id = row
    if message.sent_at is None:
        raise UnknownSurvey(f"message {message_id} was never sent")
    customer = None
    if message.customer_external_id is not None:
        customer = s.scalars(select(Customer).where(Customer.shop_id == message.shop_id,
                                                    Customer.external_id == message.customer_external_id)).first()
        if customer is not None and customer.redacted_at is not None:
            raise UnknownSurvey(f"message {message_id} belongs to a redacted customer")
    if at - message.sent_at > OPEN_FOR:
        raise SurveyClosed(f"message {message_id} was sent on {message.sent_at:%Y-%m-%d}: its survey has closed",
                           shop.name or shop.domain, (customer.locale if customer else None) or shop.locale)
    order_name = None
    if order_id is not None:
        order_name = s.scalar(select(Order.name).where(Order.shop_id == message.shop_id, Order.external_id == order_id))
    return message, shop, customer, order_id, order_name or None


def _response(s: Session, message: Message) -> SurveyResponse | None:
    return s.scalars(select(SurveyResponse).where(SurveyResponse.shop_id == message.shop_id,
                                                  SurveyResponse.message_id == message.id)).first()


def _view(message: Message, shop: Shop, customer: Customer | None, order_id: str | None, order_name: str | None,
          response: SurveyResponse | None) -> Survey:
    return Survey(
        message_id=message.id, shop_id=shop.id, shop_name=shop.name or shop.domain, shop_locale=shop.locale,
        customer_id=message.customer_external_id, first_name=customer.first_name if customer else None,
        locale=customer.locale if customer else None, order_id=order_id, order_name=order_name,
        answer=Answer(response.score, response.nps, response.comment, response.created_at, response.updated_at)
        if response else None)


def survey_for(c: Container, message_id: int, at: datetime) -> Survey:
    """What the survey page shows at `at` for the message's link (UnknownSurvey when there is no such survey,
    SurveyClosed when it has expired)."""
    with c.sessions() as s:
        message, shop, customer, order_id, order_name = _message(s, message_id, at)
        return _view(message, shop, customer, order_id, order_name, _response(s, message))


def answer(c: Container, message_id: int, score: int, nps: int, comment: str | None, at: datetime) -> Answered:
    """Store the answer (InvalidAnswer, and nothing written, when it is not a valid one) and route it; committed
    when this returns. The first answer inserts, a later one changes the same row (both scores and the comment)."""
    score, nps, comment = _valid(score, nps, comment)
    with SqlUnitOfWork(c.sessions) as uow:
        s = uow.session
        assert s is not None
        message, shop, customer, order_id, order_name = _message(s, message_id, at)
        inserted = s.execute(insert_for(s, SurveyResponse).values(
            shop_id=message.shop_id, message_id=message.id, customer_external_id=message.customer_external_id,
            order_external_id=order_id, score=score, nps=nps, comment=comment, created_at=at, updated_at=at,
        ).on_conflict_do_nothing(index_elements=["shop_id", "message_id"]).returning(SurveyResponse.id)).first()
        first = inserted is not None  # None: the row was there already (an earlier, or a concurrent, answer)
        if not first:
            s.execute(update(SurveyResponse).where(
                SurveyResponse.shop_id == message.shop_id, SurveyResponse.message_id == message.id,
            ).values(score=score, nps=nps, comment=comment, updated_at=at))
        if first and message.customer_external_id:  # points for completing it, whatever the answer
            loyalty.award_action(s, message.shop_id, message.customer_external_id, "survey", str(message.id), at)
        if message.customer_external_id and comment and len(comment.strip()) >= REVIEW_MIN_CHARACTERS:
            # A written comment is the customer's review of the order: the program's review points (and the
            # Reviewer badge), once per order's survey, whether it came with the first answer or a later one.
            loyalty.award_action(s, message.shop_id, message.customer_external_id, "review", str(message.id), at)
        response = _response(s, message)
        assert response is not None
        routed = feedback.route(s, shop, response, at)
        if routed.high and order_id is not None:  # invited to review and refer: once per survey, ever
            praised = OrderPraised(shop.id, at, order_id, message.customer_external_id, message.id, score, nps)
            if uow.events.record(praised):
                react(uow, [praised], at)
        survey = _view(message, shop, customer, order_id, order_name, response)
        code = message.code or None
        uow.commit()
    log.info("survey.answered", shop_id=survey.shop_id, message_id=message_id, score=score, nps=nps, first=first,
             comment=comment is not None, low=routed.low, high=routed.high)
    return Answered(survey, code, first)
