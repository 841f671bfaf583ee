"""The SMTP doors' fixtures, as their own tests use them: an SMTP login to submit with, and
a loopback DNS server for the MX."""

from tests.inbound.conftest import dns_server, zone  # noqa: F401 (fixtures)
from tests.submission.conftest import credential  # noqa: F401 (fixture)
