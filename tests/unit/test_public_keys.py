"""Public (browser) write keys as an admin creates them: events only, origins spelled as
browsers send them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.key_api import KeyCreate, origin_of


def test_an_origin_is_scheme_host_and_port_as_browsers_send_it() -> None:
    assert origin_of("HTTPS://WWW.Example.com/") == "https://www.example.com"
    assert origin_of("http://localhost:3000") == "http://localhost:3000"
    for wrong in (
        "www.example.com",
        "ftp://example.com",
        "https://example.com/pricing",
        "https://u@x.example",
    ):
        with pytest.raises(ValueError):
            origin_of(wrong)


def test_a_public_key_sends_events_only_and_needs_an_origin() -> None:
    key = KeyCreate(name="www", scopes=["events:write"], public=True, allowed_origins=["https://x.example"])
    assert key.allowed_origins == ["https://x.example"]
    refused = [
        {"scopes": ["events:write", "leads:read"], "public": True, "allowed_origins": ["https://x.example"]},
        {"scopes": ["events:write"], "public": True},
        {"scopes": ["events:write"], "allowed_origins": ["https://x.example"]},
    ]
    for body in refused:
        with pytest.raises(ValidationError):
            KeyCreate.model_validate({"name": "www", **body})
