"""The rule by which `leadflow replay` refuses a topic that lost history."""

from __future__ import annotations

from leadflow.admin.replay import lost_history


def test_a_partition_ending_before_what_the_group_read_lost_history() -> None:
    assert lost_history({0: 120, 1: 3}, beginnings={0: 0, 1: 0}, ends={0: 4, 1: 3}) == [
        "p0: the group had read 120 messages, the partition ends at 4"
    ]


def test_an_empty_partition_the_group_had_read_lost_history() -> None:
    assert lost_history({0: 7}, beginnings={0: 0}, ends={0: 0}) != []


def test_a_partition_beginning_after_what_the_group_read_lost_unread_messages() -> None:
    assert lost_history({0: 100}, beginnings={0: 150}, ends={0: 300}) == [
        "p0: the group had read up to 100, the partition begins at 150"
    ]


def test_retention_of_what_the_group_read_and_groups_without_offsets_are_no_loss() -> None:
    assert lost_history({0: 100, 1: None}, beginnings={0: 100, 1: 40}, ends={0: 250, 1: 90}) == []
