"""The Lists API's answers as JSON schemas (Mailgun's shapes) for /openapi.json."""

from __future__ import annotations

from mailhaven.openapi import ANY_OBJECT, BOOLEAN, DATE, INTEGER, STRING, answers, array, obj, paged

LIST = obj({"address": STRING, "name": STRING, "description": STRING,
            "access_level": STRING, "reply_preference": STRING, "created_at": DATE,
            "members_count": INTEGER},
           optional=("name", "description", "access_level", "reply_preference", "created_at",
                     "members_count"), title="MailingList")
MEMBER = obj({"address": STRING, "name": STRING, "subscribed": BOOLEAN, "vars": ANY_OBJECT},
             optional=("name", "subscribed", "vars"), title="ListMember")
EXAMPLE_LIST = {"address": "news@mg.example.com", "name": "News", "description": "",
                "access_level": "readonly", "reply_preference": "list",
                "created_at": "Sun, 06 Dec 2026 09:21:17 GMT", "members_count": 1}
EXAMPLE_MEMBER = {"address": "bob@example.com", "name": "Bob", "subscribed": True,
                  "vars": {"age": 26}}
_LISTS = "https://api.example.com/v3/lists/pages"
_MEMBERS = "https://api.example.com/v3/lists/news@mg.example.com/members/pages"


def _paging(url: str, address: str) -> dict[str, str]:
    return {"first": f"{url}?page=first&limit=100", "last": f"{url}?page=last&limit=100",
            "next": f"{url}?page=next&address={address}&limit=100",
            "previous": f"{url}?page=prev&address={address}&limit=100"}


LISTS = answers(obj({"total_count": INTEGER, "items": array(LIST)}, title="MailingLists"),
                {"total_count": 1, "items": [EXAMPLE_LIST]})
LIST_PAGES = answers(paged(LIST, "MailingListPage"), {
    "items": [EXAMPLE_LIST], "paging": _paging(_LISTS, "news%40mg.example.com")})
ONE_LIST = answers(obj({"list": LIST}, title="MailingListAnswer"), {"list": EXAMPLE_LIST})


def list_changed(message: str) -> dict:
    return answers(obj({"list": LIST, "message": STRING}, title="MailingListChanged"),
                   {"list": EXAMPLE_LIST, "message": message})


LIST_DELETED = answers(obj({"address": STRING, "message": STRING}, title="MailingListDeleted"),
                       {"address": "news@mg.example.com",
                        "message": "Mailing list has been removed"})
MEMBERS = answers(obj({"total_count": INTEGER, "items": array(MEMBER)}, title="ListMembers"),
                  {"total_count": 1, "items": [EXAMPLE_MEMBER]})
MEMBER_PAGES = answers(paged(MEMBER, "ListMemberPage"), {
    "items": [EXAMPLE_MEMBER], "paging": _paging(_MEMBERS, "bob%40example.com")})
ONE_MEMBER = answers(obj({"member": MEMBER}, title="ListMemberAnswer"),
                     {"member": EXAMPLE_MEMBER})


def member_changed(message: str) -> dict:
    return answers(obj({"member": MEMBER, "message": STRING}, title="ListMemberChanged"),
                   {"member": EXAMPLE_MEMBER, "message": message})
