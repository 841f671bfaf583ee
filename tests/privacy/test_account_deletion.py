"""Every path to deleting an account asks for the same confirmation (issue 10, finding 9)."""

from __future__ import annotations

import json

import pytest

from mailhaven.accounts.models import Account
from tests.test_cli import _cli

CONFIRM = {"message": "confirm must be this account's id"}


def _alive(api, services, account_id: str) -> bool:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        deleted = session.get(Account, account_id).deleted_at is not None
    return not deleted and api.get("/v3/domains").status_code == 200


@pytest.mark.parametrize("confirm", [None, "", "someone-else"])
def test_an_erasure_request_without_confirmation_deletes_nothing(api, services, account,
                                                                 confirm) -> None:
    fields = {"type": "erasure"} | ({"confirm": confirm} if confirm is not None else {})
    refused = api.post("/v1/privacy/requests", data=fields)
    assert (refused.status_code, refused.json()) == (400, CONFIRM)
    assert _alive(api, services, account[0])
    assert api.get("/v1/privacy/requests").json()["items"] == []  # nothing was filed


def test_an_erasure_request_confirmed_with_the_account_id_deletes_it(api, services,
                                                                     account) -> None:
    done = api.post("/v1/privacy/requests", data={"type": "erasure", "confirm": account[0]})
    assert done.status_code == 201, done.text
    assert done.json()["result"]["account_deleted"]["account"] == account[0]
    assert not _alive(api, services, account[0])


def test_delete_account_asks_for_the_same_confirmation(api, services, account) -> None:
    for params in ({}, {"confirm": "someone-else"}):
        refused = api.delete("/v1/privacy/account", params=params)
        assert (refused.status_code, refused.json()) == (400, CONFIRM)
        assert _alive(api, services, account[0])
    done = api.delete("/v1/privacy/account", params={"confirm": account[0]})
    assert done.status_code == 200, done.text
    assert not _alive(api, services, account[0])


def test_the_cli_request_asks_for_yes_as_delete_account_does(api, services, settings,
                                                             account) -> None:
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir)}
    args = ("privacy", "request", "--account", account[0], "--type", "erasure", "--json")
    refused = _cli(env, *args)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert _alive(api, services, account[0])
    done = _cli(env, *args, "--yes")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["account_deleted"]["account"] == account[0]
    assert not _alive(api, services, account[0])
