"""API keys: `rk_<8-char id>_<secret>`, shown once, stored as HMAC-SHA256(pepper, key).

The id half is looked up (indexed, not secret); the digest is compared in constant time.
Keys travel in `Authorization: Bearer`, or (the dashboard) in an HttpOnly cookie whose
unsafe requests also carry `csrf_token(pepper, key)`; never in logs or query strings.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

KEY_PREFIX = "rk"
KEY_ID_LENGTH = 8
_KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_BYTES = 32
# The secret is base64url, which may itself contain "_"; the id never does.
_KEY_RE = re.compile(rf"^{KEY_PREFIX}_([a-z0-9]{{{KEY_ID_LENGTH}}})_([A-Za-z0-9_-]{{32,64}})$")


@dataclass(frozen=True)
class NewKey:
    key_id: str
    key: str  # the full secret key: give it to the owner once, never store it


def generate_key() -> NewKey:
    key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return NewKey(key_id=key_id, key=f"{KEY_PREFIX}_{key_id}_{secret}")


def key_digest(pepper: str, key: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def parse_key_id(key: str) -> str | None:
    """The key's id, or None when `key` does not have the shape of one of our keys."""
    match = _KEY_RE.match(key)
    return match.group(1) if match else None


def digest_matches(pepper: str, key: str, stored_digest: str) -> bool:
    return hmac.compare_digest(key_digest(pepper, key), stored_digest)


def csrf_token(pepper: str, key: str) -> str:
    """The dashboard's anti-CSRF token of a session: derived from its key, so the server
    keeps no session state, and useless without the key's cookie beside it."""
    return hmac.new(pepper.encode(), f"csrf:{key}".encode(), hashlib.sha256).hexdigest()
