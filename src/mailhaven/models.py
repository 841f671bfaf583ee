"""Every table, imported once so the metadata (and Alembic) sees the whole schema."""

from mailhaven.accounts.models import Account, ApiKey
from mailhaven.audit.models import AuditEntry
from mailhaven.controls.models import Consent, SubjectControl
from mailhaven.credentials.models import SmtpCredential
from mailhaven.delivery.models import Delivery
from mailhaven.disclosures.models import Disclosure, DisclosureSubject, Notification
from mailhaven.disclosures.register import Subprocessor
from mailhaven.domains.models import Domain
from mailhaven.events.models import Event
from mailhaven.inbound.models import InboundMessage, RoutePost
from mailhaven.lists.models import ListMember, MailingList
from mailhaven.messages.models import Message
from mailhaven.notices.models import NoticeAnnouncement, NoticeObjection, PrivacyNotice
from mailhaven.privacy.models import Erasure, FormCounter, PrivacyRequest
from mailhaven.regions.models import RegionEntry, RegionTransfer
from mailhaven.retention.models import RetentionPolicy
from mailhaven.routes.models import Route
from mailhaven.site.models import ContactMessage, Platform
from mailhaven.stats.models import StatCount, Tag
from mailhaven.storage.base import Base
from mailhaven.storage.periodic import JobRun
from mailhaven.storage.revocations import RevocationCounter
from mailhaven.suppressions.models import Suppression
from mailhaven.templates.models import Template, TemplateVersion
from mailhaven.users.models import AuthAttempt, User, UserToken, WebSession
from mailhaven.vault.models import VaultKey
from mailhaven.webhooks.models import Webhook, WebhookDelivery

metadata = Base.metadata

__all__ = ["Account", "ApiKey", "AuditEntry", "AuthAttempt", "Consent", "ContactMessage",
           "Delivery", "Disclosure", "DisclosureSubject", "Domain", "Erasure", "Event",
           "FormCounter", "InboundMessage", "JobRun", "ListMember", "MailingList", "Message",
           "NoticeAnnouncement", "NoticeObjection", "Notification", "Platform",
           "PrivacyNotice", "PrivacyRequest",
           "RegionEntry", "RegionTransfer", "RetentionPolicy", "RevocationCounter", "Route",
           "RoutePost",
           "SmtpCredential", "StatCount", "SubjectControl", "Subprocessor", "Suppression", "Tag",
           "Template", "TemplateVersion", "User", "UserToken", "VaultKey", "Webhook",
           "WebhookDelivery", "WebSession", "metadata"]
