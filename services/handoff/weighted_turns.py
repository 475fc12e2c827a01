"""Weighted round-robin: the order in which a team's members take turns, by their weights.

Smooth weighted round-robin (the algorithm of nginx's upstreams): over one period of
sum(weights) turns every member gets exactly its weight's share, and its turns are spread
through the period rather than bunched (weights 2:1:1 give a, b, a, c, not a, a, b, c).
The team's cursor counts turns taken; the member at `order[cursor % len(order)]` is next.
Pure: the cursor is kept by the store.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence


@functools.cache
def weighted_order(members: tuple[tuple[str, int], ...]) -> tuple[str, ...]:
    """One period of turns for (member, weight) pairs; each member appears `weight` times."""
    if not members or any(weight < 1 for _, weight in members):
        raise ValueError("weighted round-robin needs at least one member, each with a weight of 1 or more")
    total = sum(weight for _, weight in members)
    current = [0] * len(members)
    order: list[str] = []
    for _ in range(total):
        for i, (_, weight) in enumerate(members):
            current[i] += weight
        best = max(range(len(members)), key=lambda i: current[i])  # the first of equals: file order
        current[best] -= total
        order.append(members[best][0])
    return tuple(order)


def turns_from(order: Sequence[str], cursor: int) -> list[tuple[int, str]]:
    """One period of (cursor, member) starting at `cursor`: whom to try, in order, from here."""
    size = len(order)
    return [(cursor + step, order[(cursor + step) % size]) for step in range(size)]
