"""The satisfaction survey a message links to (library journey `survey`): one question, "how happy are you with
your order?", a score from 1 to 5 and an optional comment.

One answer per message: the first inserts the row, answering again changes that same row (never a second one).
The reward the message promised for completing the survey is the discount code already created in the store when
the message was sent (`messages.code`); every answer returns it, the same each time. A message that does not
exist, was never sent, or whose customer was redacted has no survey (UnknownSurvey) and nothing is written.
Every write commits before it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import loyalty
from app.db.engine import insert_for
from app.db.models import Customer, Enrollment, Message, Order, Shop, SurveyResponse

if TYPE_CHECKING:
    from app.bootstrap import Container

log = structlog.get_logger(__name__)
SCORES = range(1, 6)  # 1 very unhappy ... 5 very happy
MAX_COMMENT = 2_000  # characters, once stripped (a browser's CRLF line breaks count as one)
REVIEW_MIN_CHARACTERS = 20  # a written comment this long counts as a review (points for action "review")


class UnknownSurvey(LookupError):
    """No such message, it was never sent, or its customer was redacted."""


class InvalidAnswer(ValueError):
    """A score outside 1..5, or a comment that is too long. `field` says which: "score" or "comment"."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Answer:
    score: int
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


def _valid(score: Any, comment: str | None) -> tuple[int, str | None]:
    if not isinstance(score, int) or isinstance(score, bool) or score not in SCORES:
        raise InvalidAnswer(f"the score must be a whole number from 1 to 5, not {score!r}", "score")
    if comment is not None and not isinstance(comment, str):
        raise InvalidAnswer(f"a comment is text, not {type(comment).__name__}", "comment")
    text = (comment or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > MAX_COMMENT:
        raise InvalidAnswer(f"the comment has {len(text)} characters, more than {MAX_COMMENT}", "comment")
    return score, text or None


def _message(s: Session, message_id: int) -> tuple[Message, Shop, Customer | None, str | None, str | None]:
    """The sent message, its shop, its customer (if the store knows them), its order's id and name."""
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
        answer=Answer(response.score, response.comment, response.created_at, response.updated_at)
        if response else None)


def survey_for(c: Container, message_id: int) -> Survey:
    """What the survey page shows for the message's link (UnknownSurvey when there is no such survey)."""
    with c.sessions() as s:
        message, shop, customer, order_id, order_name = _message(s, message_id)
        return _view(message, shop, customer, order_id, order_name, _response(s, message))


def answer(c: Container, message_id: int, score: int, comment: str | None, at: datetime) -> Answered:
    """Store the answer (InvalidAnswer, and nothing written, when it is not a valid one); committed when this
    returns. The first answer inserts, a later one changes the same row."""
    score, comment = _valid(score, comment)
    with c.sessions() as s, s.begin():
        message, shop, customer, order_id, order_name = _message(s, message_id)
        inserted = s.execute(insert_for(s, SurveyResponse).values(
            shop_id=message.shop_id, message_id=message.id, customer_external_id=message.customer_external_id,
            order_external_id=order_id, score=score, comment=comment, created_at=at, updated_at=at,
        ).on_conflict_do_nothing(index_elements=["shop_id", "message_id"]).returning(SurveyResponse.id)).first()
        first = inserted is not None  # None: the row was there already (an earlier, or a concurrent, answer)
        if not first:
            s.execute(update(SurveyResponse).where(
                SurveyResponse.shop_id == message.shop_id, SurveyResponse.message_id == message.id,
            ).values(score=score, comment=comment, updated_at=at))
        if first and message.customer_external_id:  # points for completing it, whatever the answer
            loyalty.award_action(s, message.shop_id, message.customer_external_id, "survey", str(message.id), at)
        if message.customer_external_id and comment and len(comment.strip()) >= REVIEW_MIN_CHARACTERS:
            # A written comment is the customer's review of the order: the program's review points (and the
            # Reviewer badge), once per order's survey, whether it came with the first answer or a later one.
            loyalty.award_action(s, message.shop_id, message.customer_external_id, "review", str(message.id), at)
        response = _response(s, message)
        survey = _view(message, shop, customer, order_id, order_name, response)
        code = message.code or None
    log.info("survey.answered", shop_id=survey.shop_id, message_id=message_id, score=score, first=first,
             comment=comment is not None)
    return Answered(survey, code, first)
