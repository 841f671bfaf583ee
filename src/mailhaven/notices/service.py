"""The notice lifecycle (SPEC N12): publishing versions, the one in force, the amendments
still to come, and objections to them, which delete the objecting account on the day the
amendment takes effect (N8's path, legal hold included).

Notices live in the main database (they belong to no region); objections in the region of
the account that made them. A significant amendment takes effect no sooner than 30 days
after it is published, and every account holder of every region is told by mail."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account
from mailhaven.audit import service as audit
from mailhaven.clock import iso8601
from mailhaven.controls.service import holder_index
from mailhaven.errors import BadRequest, Conflict, NotFound
from mailhaven.notices.models import NoticeAnnouncement, NoticeObjection, PrivacyNotice
from mailhaven.privacy.service import Context, delete_account
from mailhaven.services import Services
from mailhaven.site.mail import existing_platform_account, send_system_mail
from mailhaven.storage.base import new_id
from mailhaven.storage.db import one_writer_at_a_time
from mailhaven.users.models import User
from mailhaven.users.service import user_details

log = logging.getLogger(__name__)
BUILTIN = "1"  # the notice the software ships (web/templates/notice_v1.html)
NOTICE_PERIOD = 30 * 86400  # a significant amendment's notice
_PUBLISHING = 7_734_236  # PostgreSQL advisory lock id: one publisher at a time
_VERSION = re.compile(r"[1-9][0-9]{0,8}")  # versions are positive integers


@dataclass(frozen=True)
class Notice:
    """A stored version, as read (usable once its session is closed)."""

    version: str
    text: str
    summary: str
    published_at: float
    effective_at: float
    significant: bool
    in_force_at: float | None
    published_by: str
    mailed: int = 0  # holders told of it (publishing a significant amendment)

    @classmethod
    def of(cls, row: PrivacyNotice) -> Notice:
        return cls(row.version, row.text, row.summary, row.published_at, row.effective_at,
                   bool(row.significant), row.in_force_at, row.published_by)

    def as_json(self, now: float, *, text: bool = False) -> dict:
        shown = {"version": self.version, "published_at": iso8601(self.published_at),
                 "effective_at": iso8601(self.effective_at), "significant": self.significant,
                 "in_force": self.effective_at <= now, "summary": self.summary}
        return shown | ({"text": self.text} if text else {})


def day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def midnight(epoch: float) -> float:
    """The start of `epoch`'s UTC day: effective dates are whole days."""
    return float(epoch - epoch % 86400)


def earliest_significant(now: float) -> float:
    """The first day a significant amendment published at `now` may take effect: its UTC
    date 30 days after the publication's (whatever the hour of publishing)."""
    return midnight(now) + NOTICE_PERIOD


# -- reading ---------------------------------------------------------------------------------

def notice_versions(session: Session) -> list[Notice]:
    """Every stored version, oldest first (by effective date)."""
    return [Notice.of(row) for row in session.scalars(
        select(PrivacyNotice).order_by(PrivacyNotice.effective_at, PrivacyNotice.published_at))]


def get_version(session: Session, version: str) -> Notice | None:
    row = session.get(PrivacyNotice, version)
    return None if row is None else Notice.of(row)


def in_force(session: Session, now: float) -> Notice | None:
    """The newest stored version in effect at `now`; None: the built-in notice is."""
    row = session.scalars(select(PrivacyNotice).where(PrivacyNotice.effective_at <= now)
                          .order_by(PrivacyNotice.effective_at.desc(),
                                    PrivacyNotice.published_at.desc()).limit(1)).first()
    return None if row is None else Notice.of(row)


def pending_significant(session: Session, now: float) -> list[Notice]:
    """Significant amendments published and not yet in effect, soonest first (the panel's
    banner: they can still be objected to)."""
    return [Notice.of(row) for row in session.scalars(
        select(PrivacyNotice).where(PrivacyNotice.significant.is_(True),
                                    PrivacyNotice.effective_at > now)
        .order_by(PrivacyNotice.effective_at))]


def next_version(session: Session) -> str:
    """One more than the highest numbered version (the built-in notice is 1)."""
    numbers = [int(v) for v in session.scalars(select(PrivacyNotice.version)) if v.isdigit()]
    return str(max([int(BUILTIN), *numbers]) + 1)


# -- publishing ------------------------------------------------------------------------------

def publish(services: Services, *, version: str, text: str, effective_at: float,
            significant: bool, summary: str = "", actor: str = "cli") -> Notice:
    """Store a new version; a significant amendment is then mailed to every holder."""
    now = services.clock.now()  # one reading for the whole operation (the 30-day rule)
    with services.main_db.transaction() as session:
        notice = publish_in(session, services, version=version, text=text,
                            effective_at=effective_at, significant=significant,
                            summary=summary, actor=actor, now=now)
    if notice.significant and notice.effective_at > notice.published_at:
        return dataclasses.replace(notice, mailed=announce(services, notice))
    return notice


def publish_in(session: Session, services: Services, *, version: str, text: str,
               effective_at: float, significant: bool, summary: str, actor: str,
               now: float) -> Notice:
    """`publish` within the caller's main-database transaction (no mail sent); `now` is the
    caller's one reading of the clock, so that a date it computed is judged by the same."""
    if not _VERSION.fullmatch(version):
        raise BadRequest("version: a whole number, e.g. 2 (the built-in notice is "
                         f"{BUILTIN})")
    if not text.strip():
        raise BadRequest("the notice's text is empty")
    one_writer_at_a_time(session, _PUBLISHING)
    if session.get(PrivacyNotice, version) is not None or version == BUILTIN:
        raise Conflict(f"version {version} is published already: a published version is "
                       "never changed, publish a new one")
    expected = next_version(session)
    if int(version) < int(expected):
        raise Conflict(f"version {version} is older than the newest: the next version is "
                       f"{expected}")
    first = session.scalar(select(PrivacyNotice.version).limit(1)) is None
    if not first and effective_at < midnight(now):
        raise BadRequest(f"the effective date {day(effective_at)} is in the past: only the "
                         "first notice may take effect before today")
    if significant and not first and effective_at < earliest_significant(now):
        raise BadRequest(
            "a significant amendment takes effect at least 30 days after it is published: "
            f"{day(effective_at)} is too soon, {day(earliest_significant(now))} is the "
            "earliest date")
    if significant and not first and not summary.strip():
        raise BadRequest("a significant amendment needs a summary (--summary): the holders' "
                         "mail says what changes")
    row = PrivacyNotice(version=version, text=text, summary=summary.strip(), published_at=now,
                        effective_at=max(effective_at, now),  # today's date: at once
                        significant=significant, published_by=actor[:64],
                        in_force_at=now if effective_at <= now else None)
    session.add(row)
    session.flush()
    audit.append(session, services.platform.directory_vault, actor=actor[:64],
                 action="notice.published", target=version,
                 details={"effective_at": row.effective_at, "significant": significant,
                          "first": first}, now=now)
    return Notice.of(row)


def announce(services: Services, notice: Notice) -> int:
    """Mail every account holder of every open region (the holder's address and the
    account's Admins, once each) through that region's queue; how many were mailed now. A
    region that fails is left to its `NoticeRunner`, which completes it (`announce_in`)."""
    sent = 0
    for region in services.platform.regions.values():
        try:
            sent += announce_in(region, notice)
        except Exception:  # the announcement stays owed: the scheduler mails it
            log.exception("announcing version %s in region %s failed; the scheduler will "
                          "retry", notice.version, region.region)
    return sent


def announce_in(region: Services, notice: Notice) -> int:
    """Mail this region's holders of `notice` unless they were: the region's marker is
    written in the transaction that queues the mails (two processes: one wins the marker's
    key, the other's transaction is rolled back). How many addresses were mailed."""
    subject = f"Our privacy notice changes on {day(notice.effective_at)}"
    text = announcement(region, notice)
    now = region.clock.now()
    try:
        with region.db.transaction() as session:
            if session.get(NoticeAnnouncement, notice.version) is not None:
                return 0
            marker = NoticeAnnouncement(version=notice.version, announced_at=now, mailed=0)
            session.add(marker)
            session.flush()
            addresses = holders(session, region)
            for address in addresses:
                send_system_mail(session, region, to=address, subject=subject, text=text)
            marker.mailed = len(addresses)
            audit.append(session, region.vault, actor="system", action="notice.announced",
                         target=notice.version,
                         details={"region": region.region, "mailed": len(addresses)}, now=now)
    except IntegrityError:
        return 0  # another process announced it meanwhile
    region.delivery_bell.ring()
    return len(addresses)


def announce_owed(services: Services, now: float) -> list[str]:
    """The scheduler's part (this region): announce the significant amendments not yet in
    force that its holders were not mailed (publishing failed half-way, or was cut short)."""
    with services.main_db.sessions() as main:
        owed = [n for n in pending_significant(main, now) if n.effective_at > n.published_at]
    with services.db.sessions() as session:
        done = set(session.scalars(select(NoticeAnnouncement.version)))
    announced = []
    for notice in owed:
        if notice.version not in done and announce_in(services, notice):
            announced.append(notice.version)
    return announced


def announcement(services: Services, notice: Notice) -> str:
    base = services.settings.api_url
    when = day(notice.effective_at)
    return "\n".join([
        f"We are changing our privacy notice. Version {notice.version} takes effect on "
        f"{when}.", "",
        "What changes:", notice.summary or "(see the differences, below)", "",
        *changed_lines(services, notice),
        f"Read the new version and what differs from the current one: "
        f"{base}/privacy/versions/{notice.version}", "",
        f"If you do not accept it, you may object before {when}: in the panel (the banner on "
        f"every page), or with the API:",
        f"  curl -u api:YOUR_API_KEY -X POST {base}/v1/privacy/notices/{notice.version}/objection",
        f"Your account is then deleted on {when} and its data erased, as the notice says; "
        "you may withdraw the objection until then.", ""])


def changed_lines(services: Services, notice: Notice, most: int = 8) -> list[str]:
    """The first lines the amendment adds or removes from the text before it (none for an
    amendment of the register only), for the holders' mail; the page has them all."""
    with services.main_db.sessions() as session:
        before = in_force(session, notice.effective_at - 0.001)
    if before is None:
        return []
    changed = [line for line in difflib.unified_diff(before.text.splitlines(),
                                                     notice.text.splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    if not changed:
        return []
    shown = [f"  {line[0]} {line[1:]}" for line in changed[:most]]
    return ["In the text:", *shown, *(["  …"] if len(changed) > most else []), ""]


def holders(session: Session, services: Services) -> list[str]:
    """Every live account's holder address and Admin users' addresses, deduplicated (not
    the platform's own account)."""
    platform = existing_platform_account(session)
    found: dict[str, str] = {}
    accounts = session.scalars(select(Account).where(Account.deleted_at.is_(None))
                               .order_by(Account.created_at, Account.id)).all()
    live = {a.id for a in accounts if a.id != platform}
    keys = services.vault.keys(session, [a.holder_key_id for a in accounts if a.id in live])
    for account in accounts:
        key = keys.get(account.holder_key_id or "")
        if account.id in live and key is not None and account.email_sealed:
            address = services.vault.open_text(key, account.email_sealed, "account.email")
            found.setdefault(address.lower(), address)
    admins = session.scalars(select(User).where(User.role == "admin",
                                                User.account_id.in_(live))).all()
    for user in admins:
        details = user_details(session, services.vault, user)
        if details is not None:
            found.setdefault(details[1].lower(), details[1])
    return list(found.values())


def bring_into_force(services: Services, now: float) -> list[str]:
    """Mark the versions whose effective date has come (main database); their names."""
    with services.main_db.transaction() as session:
        due = list(session.scalars(select(PrivacyNotice.version).where(
            PrivacyNotice.effective_at <= now, PrivacyNotice.in_force_at.is_(None))))
        for version in due:
            done = session.execute(update(PrivacyNotice).where(
                PrivacyNotice.version == version, PrivacyNotice.in_force_at.is_(None))
                .values(in_force_at=now))
            if getattr(done, "rowcount", 0) == 1:
                audit.append(session, services.platform.directory_vault, actor="system",
                             action="notice.in_force", target=version, now=now)
    return due


# -- objections ------------------------------------------------------------------------------

def _active(session: Session, account_id: str, version: str | None = None
            ) -> NoticeObjection | None:
    query = select(NoticeObjection).where(
        NoticeObjection.account_id == account_id, NoticeObjection.withdrawn_at.is_(None),
        NoticeObjection.carried_out_at.is_(None))
    if version is not None:
        query = query.where(NoticeObjection.version == version)
    return session.scalars(query.order_by(NoticeObjection.scheduled_for).limit(1)).first()


def object_to(services: Services, account_id: str, version: str,
              actor: str | None = None) -> NoticeObjection:
    """The account objects to a significant amendment not yet in force: its deletion is
    scheduled for the amendment's effective date. Objecting again changes nothing."""
    now = services.clock.now()
    with services.main_db.sessions() as main:
        notice = get_version(main, version)
    if notice is None:
        raise NotFound("No such notice version")
    if not notice.significant:
        raise BadRequest(f"version {version} is not a significant amendment: there is "
                         "nothing to object to")
    if notice.effective_at <= now:
        raise BadRequest(f"version {version} is in force since {day(notice.effective_at)}: "
                         "an objection had to come before")
    with services.db.transaction() as session:
        found = _active(session, account_id, version)
        if found is not None:
            return found
        objection = NoticeObjection(id=new_id(), account_id=account_id, version=version,
                                    objected_at=now, scheduled_for=notice.effective_at)
        session.add(objection)
        session.flush()
        audit.append(session, services.vault, actor=actor or f"account:{account_id}",
                     action="notice.objected", target=version,
                     subject_index=holder_index(account_id),
                     details={"account": account_id, "scheduled_for": notice.effective_at},
                     now=now)
        return objection


@dataclass(frozen=True)
class Withdrawn:
    """A withdrawn objection, and what it means for the account (said as it is: another
    objection may keep its deletion scheduled)."""

    objection: NoticeObjection
    still_scheduled: NoticeObjection | None

    @property
    def message(self) -> str:
        left = self.still_scheduled
        if left is None:
            return "Objection withdrawn: the account will not be deleted"
        return (f"Objection to version {self.objection.version} withdrawn, but the account "
                f"is still to be deleted on {day(left.scheduled_for)}: it objected to version "
                f"{left.version} too")


def withdraw(services: Services, account_id: str, version: str | None,
             actor: str | None = None) -> Withdrawn:
    """The objection to `version` (named: never whichever comes first) is withdrawn, while
    its deletion is not yet due."""
    if not version:
        raise BadRequest("version: which amendment's objection to withdraw")
    now = services.clock.now()
    with services.db.transaction() as session:
        objection = _active(session, account_id, version)
        if objection is None:
            raise NotFound(f"No objection to version {version} to withdraw")
        if objection.scheduled_for <= now:
            raise Conflict(f"the deletion objecting to version {version} asked for is due "
                           f"since {day(objection.scheduled_for)}: it can no longer be "
                           "withdrawn")
        objection.withdrawn_at = now
        audit.append(session, services.vault, actor=actor or f"account:{account_id}",
                     action="notice.objection_withdrawn", target=version,
                     subject_index=holder_index(account_id),
                     details={"account": account_id}, now=now)
        session.flush()
        return Withdrawn(objection, _active(session, account_id))


def objection(session: Session, account_id: str) -> NoticeObjection | None:
    """The account's objection still to be carried out (the soonest), if any."""
    return _active(session, account_id)


def scheduled_deletion(session: Session, account_id: str) -> float | None:
    """When the account is to be deleted because it objected to an amendment."""
    found = _active(session, account_id)
    return None if found is None else found.scheduled_for


def carry_out_due(services: Services, now: float) -> list[str]:
    """Delete the accounts whose objection is due (this region), each exactly once even
    when two processes try: the objection is claimed in the deletion's own transaction.
    The ids of the accounts deleted."""
    with services.db.sessions() as session:
        due = list(session.execute(select(NoticeObjection.id, NoticeObjection.account_id)
                                   .where(NoticeObjection.scheduled_for <= now,
                                          NoticeObjection.withdrawn_at.is_(None),
                                          NoticeObjection.carried_out_at.is_(None))
                                   .order_by(NoticeObjection.scheduled_for)))
    deleted = []
    for objection_id, account_id in due:
        with services.db.transaction() as session:
            claimed = session.execute(update(NoticeObjection).where(
                NoticeObjection.id == objection_id, NoticeObjection.carried_out_at.is_(None),
                NoticeObjection.withdrawn_at.is_(None)).values(carried_out_at=now))
            if getattr(claimed, "rowcount", 0) != 1:
                continue  # another process did it, or it was withdrawn meanwhile
            account = session.get(Account, account_id)
            if account is None or account.deleted_at is not None:
                continue  # deleted already (another objection, or the holder's request)
            ctx = Context.of(services, "notice-objection")
            delete_account(session, ctx, account_id)
            deleted.append(account_id)
        services.key_cache.forget_account(account_id)
    return deleted
