"""The SDK's client, as tests/test_mailgun_sdk.py makes it."""

from tests.test_mailgun_sdk import client  # noqa: F401 (a fixture)
