"""The number on a card, judged by the project's one checker (:mod:`muster.idnumbers`).

The driver does not judge: it hands on the card as read. Whoever consumes a ``CardRead`` calls
:func:`check_card` with its own clock's today; this adapter only says which of the card's
fields the checker compares (its card type, birth date and sex).
"""

from __future__ import annotations

import datetime as dt

from edge.drivers.sam.textblock import CardText
from muster.idnumbers import IdCheck, check_id_number

__all__ = ["check_card"]


def check_card(card: CardText, *, today: dt.date) -> IdCheck:
    """Check the number on ``card`` as its document type issues it, against its own birth
    date and sex."""
    return check_id_number(
        card.id_number,
        today=today,
        card_type=card.card_type,
        birth_date=card.birth_date,
        sex=card.sex.value,
    )
