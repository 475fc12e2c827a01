"""How a lead's identities are written once they are identities: the key intake partitions on and
scoring looks leads up by, so both services must write them the same way. Stdlib only.

Both are NFC-normalised, so that "josé" typed with a composed é (U+00E9) and with an e and a
combining accent (U+0065 U+0301) are one lead; emails are also trimmed and lower-cased.
"""

from __future__ import annotations

import unicodedata

# The failed event of an alias between two people known by different emails: intake records it
# when the message names both emails, scoring when the two ids' leads hold them.
ALIAS_CONFLICT = "alias_conflict"


def normalize_email(email: str) -> str:
    return unicodedata.normalize("NFC", email.strip().lower())


def normalize_anonymous_id(anonymous_id: str) -> str:
    """Case is kept: an anonymous id is the sender's opaque token, only its spelling is unified."""
    return unicodedata.normalize("NFC", anonymous_id.strip())
