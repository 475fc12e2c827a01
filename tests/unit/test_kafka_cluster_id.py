"""The embedded Apache Kafka's cluster id must be one kafka-storage's command line accepts."""

import base64
import uuid

import pytest

from leadflow.devstack import apache_kafka


def test_a_cluster_id_is_22_base64url_characters_of_a_random_uuid() -> None:
    drawn = apache_kafka.cluster_id()

    assert len(drawn) == 22
    assert len(base64.urlsafe_b64decode(drawn + "==")) == 16


def test_an_id_that_would_start_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 encodes to "-" in base64url: kafka-storage would read "-…" as an option, not an id.
    dashed, plain = uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))
    draws = iter([dashed, plain])
    monkeypatch.setattr(apache_kafka.uuid, "uuid4", lambda: next(draws))

    drawn = apache_kafka.cluster_id()

    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    assert drawn == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")


def test_no_cluster_id_starts_with_a_dash_over_many_draws() -> None:
    assert not any(apache_kafka.cluster_id().startswith("-") for _ in range(5_000))
