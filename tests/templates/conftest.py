"""Fixtures shared with other suites: the SDK's client, as tests/test_mailgun_sdk.py makes
it; the SMTP submission server and its login, as tests/submission's conftest makes them."""

from tests.submission.conftest import credential, submission  # noqa: F401 (fixtures)
from tests.test_mailgun_sdk import client  # noqa: F401 (a fixture)
