"""The producers' partitioner puts every key where Kafka's default partitioner (Java's murmur2,
as aiokafka implements it) does: a key's events stay on one partition, whichever client wrote them."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from shared.kafka import key_partition, murmur2


def test_murmur2_is_kafkas_for_every_length_and_byte() -> None:
    rng = random.Random(14)
    for length in range(70):
        for _ in range(30):
            data = rng.randbytes(length)
            assert murmur2(data) == aiokafka_murmur2(data), data


def test_a_subject_key_lands_on_the_default_partitioners_partition() -> None:
    rng = random.Random(7)
    default = DefaultPartitioner()
    for count in (1, 3, 12, 50):
        partitions = list(range(count))
        for _ in range(200):
            key = rng.randbytes(32).hex().encode()  # a subject: 64 hex digits
            assert key_partition(key, partitions, partitions) == default(key, partitions, partitions)


def test_an_unkeyed_record_goes_to_an_available_partition() -> None:
    assert key_partition(None, [0, 1, 2], [2]) == 2
    assert key_partition(None, [0, 1, 2], []) in {0, 1, 2}
