"""What a remote artifact store raises when it cannot be reached or refuses a request; the
API answers these with 503 `storage_unavailable` (api/problems.py). botocore's exception
module is light: importing it loads no client."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

STORE_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError)
