"""The regions' fixtures (an installation split into us and eu), for the platform-wide
statistics that read every region."""

from tests.regions.conftest import pg_databases, platform, regions_settings  # noqa: F401
