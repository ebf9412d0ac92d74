"""Multiple comparisons: Holm-Bonferroni over a family of p-values."""

from __future__ import annotations

from collections.abc import Sequence


def holm(p_values: Sequence[float | None]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order. A missing p
    (None: it could not be computed) counts as 1, so it neither shrinks the
    family nor can be declared significant."""
    ps = [1.0 if p is None else p for p in p_values]
    m = len(ps)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: ps[j])):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        adjusted[i] = running
    return adjusted
