"""Mailing lists and their members. A list's address is the customer's own, on one of its
domains; a member's address, name and vars are the member's, sealed under the member's
subject key and found by blind index, so erasing the member erases the membership."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

LIST_ADDRESS = classified(
    "non-personal", "none", "mailing lists", "until the list is deleted",
    note="the list's own address, on one of the customer's domains (a role address such as "
         "team@mg.example.com, like the domain's name): mail to it is found by it",
)
LIST_DETAILS_SEALED = classified(
    "personal", "account holder", "mailing lists",
    "until the list is deleted, its domain deleted or the account erased",
    note="the list's name and description, customer text that may name anyone: ciphertext "
         "under the list's content key",
)
MEMBER_SEALED = classified(
    "personal", "list member", "mailing lists",
    "until the member is deleted or erased, or the list deleted",
    note="the member's address, name and vars, sealed under the member's vault key",
)
MEMBER_INDEX = classified(
    "personal", "list member", "mailing lists", "until the member is deleted or erased",
    note="keyed blind index (HMAC) of the member's address: finds the member without it",
)
MEMBER_STATE = classified(
    "non-personal", "none", "mailing lists", "until the member is deleted or erased",
    note="whether the member is subscribed (only the sealed row says who it is)",
)


class MailingList(Base):
    __tablename__ = "mailing_lists"
    __table_args__ = (UniqueConstraint("account_id", "address"),)

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP)
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), index=True, data=OWNERSHIP)
    address: Mapped[str] = column(String(320), data=LIST_ADDRESS)  # normalised
    access_level: Mapped[str] = column(String(16), data=TECHNICAL)
    reply_preference: Mapped[str] = column(String(16), data=TECHNICAL)
    # Erasing the account's keys erases its lists (ON DELETE CASCADE).
    content_key_id: Mapped[str] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="CASCADE"), index=True,
        data=TECHNICAL)
    details_sealed: Mapped[bytes] = column(LargeBinary, data=LIST_DETAILS_SEALED)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)


class ListMember(Base):
    __tablename__ = "list_members"
    __table_args__ = (UniqueConstraint("list_id", "address_index"),)

    # The order members were added in: the pages follow it.
    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    list_id: Mapped[str] = column(
        String(24), ForeignKey("mailing_lists.id", ondelete="CASCADE"), index=True,
        data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP)
    address_index: Mapped[str] = column(String(64), index=True, data=MEMBER_INDEX)
    # Erasing the member's subject key erases the membership (ON DELETE CASCADE).
    subject_key_id: Mapped[str] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="CASCADE"), index=True,
        data=TECHNICAL)
    member_sealed: Mapped[bytes] = column(LargeBinary, data=MEMBER_SEALED)
    subscribed: Mapped[bool] = column(Boolean, default=True, data=MEMBER_STATE)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
