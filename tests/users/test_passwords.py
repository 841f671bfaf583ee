"""New passwords: long enough, not among the first ones tried, not the address."""

from __future__ import annotations

import pytest

from mailhaven.errors import BadRequest
from mailhaven.users.passwords import COMMON_PASSWORDS, new_password_hash
from mailhaven.users.service import HASHER


@pytest.mark.parametrize("password", ["short", "x" * 257, "PASSWORD1234", " qwerty123456 ",
                                      "zzzzzzzzzzzzzz", "Ann.Example@acme.test", "ann.example"])
def test_refused(password: str) -> None:
    with pytest.raises(BadRequest):
        new_password_hash(password, "ann.example@acme.test")


def test_every_listed_password_is_long_enough_to_need_the_list() -> None:
    assert len(COMMON_PASSWORDS) >= 20 and all(len(p) >= 12 for p in COMMON_PASSWORDS)


def test_a_long_phrase_without_rules_is_fine() -> None:
    hashed = new_password_hash("all lower case no digits", "ann@acme.test")
    assert hashed.startswith("$argon2id$") and HASHER.verify(hashed, "all lower case no digits")
