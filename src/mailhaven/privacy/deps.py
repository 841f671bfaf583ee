"""FastAPI dependencies of the privacy routes: who acts, for the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.privacy.service import Context


def account_context(services: ServicesDep, account_id: AccountDep) -> Context:
    """The authenticated account acts."""
    return Context.of(services, f"account:{account_id}")


def subject_context(services: ServicesDep) -> Context:
    """The data subject acts, by their one-time link."""
    return Context.of(services, "subject")


AccountContext = Annotated[Context, Depends(account_context)]
SubjectContext = Annotated[Context, Depends(subject_context)]
