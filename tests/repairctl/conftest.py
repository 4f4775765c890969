"""The CLI tests talk to the same kind of live server as the API tests."""

from tests.api.conftest import (  # noqa: F401  (fixtures)
    api_database_url,
    api_settings,
    live_server,
    new_owner,
)
