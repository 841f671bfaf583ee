"""The data inventory (SPEC N1): every stored column says what it holds and why.

A column is declared with `column(..., data=SOME_CLASS)`; the classification lands in the
column's `info`, where the inventory test and, later, `mailhaven privacy inventory` read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import mapped_column

Category = Literal["personal", "non-personal"]
LegalBasis = Literal["contract", "consent", "legal obligation", "legitimate interest"]


@dataclass(frozen=True)
class Classification:
    category: Category
    subject: str
    purposes: tuple[str, ...]
    legal_basis: LegalBasis
    retention: str
    note: str = ""


def column(*args: Any, data: Classification, **kwargs: Any) -> Any:
    """`mapped_column` that refuses to exist without a classification."""
    info = dict(kwargs.pop("info", {}))
    info["classification"] = data
    return mapped_column(*args, info=info, **kwargs)


def classified(category: Category, subject: str, purpose: str, retention: str,
               basis: LegalBasis = "contract", note: str = "") -> Classification:
    return Classification(category, subject, (purpose,), basis, retention, note)


# The classifications most columns share, named once.
TECHNICAL = classified("non-personal", "none", "service operation", "life of the record")
OWNERSHIP = classified("non-personal", "none", "tenant isolation", "life of the record")
DELIVERY_STATE = classified(
    "non-personal", "none", "email delivery", "life of the message (events: 30 days)"
)
RECIPIENT_SEALED = classified(
    "personal", "recipient", "email delivery",
    "until the recipient's subject key is erased or retention expires",
    note="ciphertext under the recipient's vault key; erasure of the key makes it unreadable",
)
RECIPIENT_INDEX = classified(
    "personal", "recipient", "email delivery", "life of the subject",
    note="keyed blind index (HMAC); finds a subject without storing the address",
)
MESSAGE_ID_INDEX = classified(
    "personal", "recipient", "email delivery", "life of the record",
    note="keyed blind index (HMAC) of the Message-ID, which a client may write (order-77."
         "zelda@shop.test): finds a message's events; the id itself is sealed",
)
CONTENT_SEALED = classified(
    "personal", "recipient", "email delivery", "stored message bodies: 3 days after final state",
    note="ciphertext under the message's content key",
)
TAGS = classified(
    "non-personal", "none", "reporting", "life of the message",
    note="customer-chosen labels; customers are told not to put personal data in tags",
)
TEMPLATE_SEALED = classified(
    "personal", "account holder", "email delivery",
    "until the template (or version) is deleted, its domain deleted or the account erased",
    note="ciphertext under the template's content key: the customer's template content, "
         "description, author, comments and stored headers, which may name anyone",
)
TEMPLATE_LABEL = classified(
    "non-personal", "none", "email delivery", "life of the template",
    note="the template's name or a version's tag, customer-chosen identifiers of letters, "
         "digits and .-_~ only: they cannot hold an address",
)
