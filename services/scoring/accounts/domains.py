"""Registrable domains ("eu.shop.acme.co.uk" -> "acme.co.uk"), public-suffix aware.

tldextract with the Public Suffix List snapshot bundled in its wheel: no network fetch and
no cache directory, so a service never reaches out and every instance reads the same list.
Not pure (the extractor reads that snapshot once): the pure matcher takes this function as
a value.
"""

from __future__ import annotations

import functools

import tldextract

_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def registrable_domain(host_or_url: str) -> str | None:
    """The registrable domain of a host, address part or URL; None for an IP, a bare suffix or junk."""
    text = host_or_url.strip().lower().rstrip(".")
    if "@" in text:
        text = text.rpartition("@")[2]
    return _registrable_host(text)


# Cached by host, not by the text given: every person's address at a company is another
# string but the same host, so an address-keyed cache missed nearly always (and held
# addresses, which are personal data).
@functools.lru_cache(maxsize=65_536)
def _registrable_host(text: str) -> str | None:
    if not text or len(text) > 253:
        return None
    parts = _EXTRACT(text)
    if not parts.domain or not parts.suffix:
        return None
    return f"{parts.domain}.{parts.suffix}"


def load_suffix_list() -> None:
    """Read the bundled suffix list now (tldextract reads it on its first use, some 100 ms):
    at a service's start rather than in its first batch of leads."""
    _EXTRACT("example.com")
