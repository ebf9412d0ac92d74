"""Calibration of catalogue metrics on heavy users (a Pareto(1.3) tail of
impressions, uncapped), by simulation over sufficient statistics computed
exactly as the database computes them (capping included).

Bands are ±3 simulation standard errors around the nominal rate over 2,000
runs: [3.5 %, 6.5 %] for a 5 % false-positive rate, [93.5 %, 96.5 %] for
95 % coverage. The uncapped built-ins' rates are printed beside them (run
with -s): heavy users make them unreliable, which is why capping exists.
"""

from __future__ import annotations

import numpy as np
import pytest

from shared import results
from tests.results.simulate import HEAVY, chunks, draw_users, metric_stats

RUNS = 2000
USERS = 2000  # per arm
ALPHA = 0.05
CAPPING = 0.999
# One catalogue metric of each kind, capped except user_rate (0/1 per user).
CATALOGUE = {
    "impression_rate": CAPPING,
    "value_per_impression": CAPPING,
    "per_user_count": CAPPING,
    "per_user_value": CAPPING,
    "user_rate": None,
}
LIFT = 0.05


def _p_values(arms_stats: list[list[results.MetricStats]], kind: str) -> np.ndarray:
    """p of each non-baseline arm against arm 0: shape (runs, arms - 1)."""
    control = arms_stats[0]
    rows = []
    for r in range(len(control)):
        c = results.estimate(kind, control[r])
        rows.append(
            [results.compare(results.estimate(kind, arm[r]), c).p_value or 1.0 for arm in arms_stats[1:]]
        )
    return np.array(rows)


@pytest.fixture(scope="module")
def aa_rates() -> dict[tuple[str, float | None], float]:
    """A/A false-positive rate per (kind, capping)."""
    rng = np.random.default_rng(20261208)
    hits: dict[tuple[str, float | None], int] = {}
    for size in chunks(RUNS):
        arms = [draw_users(rng, HEAVY, size, USERS) for _ in range(2)]
        for kind, capping in {*CATALOGUE.items(), *((k, None) for k in results.BUILTINS.values())}:
            p = _p_values(metric_stats(arms, kind, capping), kind)
            hits[kind, capping] = hits.get((kind, capping), 0) + int((p[:, 0] < ALPHA).sum())
    return {key: count / RUNS for key, count in hits.items()}


@pytest.mark.parametrize("kind", list(CATALOGUE))
def test_aa_false_positive_rate_of_a_capped_metric_of_each_kind(
    kind: str, aa_rates: dict[tuple[str, float | None], float]
) -> None:
    capping = CATALOGUE[kind]
    rate = aa_rates[kind, capping]
    uncapped = {k: f"{aa_rates[k, None]:.2%}" for k in results.BUILTINS.values()}
    print(f"\n{kind} capping {capping}: {rate:.2%}; uncapped: {uncapped}")
    assert 0.035 <= rate <= 0.065, f"{kind} capped at {capping}: A/A rate {rate:.2%} (uncapped {uncapped})"


def test_holm_keeps_the_family_wise_error_rate_over_three_goals_and_four_variants() -> None:
    """k = 4 variants (3 comparisons with the baseline) x 3 goals = 9 tests
    per A/A run: with Holm, any false winner in at most ~5 % of runs;
    uncorrected, far more."""
    rng = np.random.default_rng(4321)
    goals = [("impression_rate", CAPPING), ("per_user_count", CAPPING), ("user_rate", None)]
    holm_hits = raw_hits = 0
    for size in chunks(RUNS):
        arms = [draw_users(rng, HEAVY, size, USERS) for _ in range(4)]
        family = np.concatenate([_p_values(metric_stats(arms, k, c), k) for k, c in goals], axis=1)
        raw_hits += int((family < ALPHA).any(axis=1).sum())
        holm_hits += sum(min(results.holm(list(row))) < ALPHA for row in family)
    fwer, raw = holm_hits / RUNS, raw_hits / RUNS
    print(f"\nFWER over 9 goal comparisons: Holm {fwer:.2%}, uncorrected {raw:.2%}")
    assert fwer <= 0.065, f"Holm FWER {fwer:.2%} (uncorrected {raw:.2%})"
    assert raw > 0.15, f"uncorrected FWER {raw:.2%}: the family should inflate it"


@pytest.fixture(scope="module")
def estimands() -> dict[str, float]:
    """The true lift of each (capped) metric, from one very large simulation:
    the same users (same seed) with and without the lift, so that what
    differs between the arms is the lift, not the draw of heavy users."""
    arms = [draw_users(np.random.default_rng(77), HEAVY, 1, 2_000_000, lift=lift) for lift in (0.0, LIFT)]
    out = {}
    for kind, capping in CATALOGUE.items():
        control, treatment = metric_stats(arms, kind, capping)
        mc, mt = results.estimate(kind, control[0]).value, results.estimate(kind, treatment[0]).value
        assert mc is not None and mt is not None
        out[kind] = mt / mc - 1
    return out


@pytest.fixture(scope="module")
def coverage(estimands: dict[str, float]) -> dict[str, float]:
    """Share of 2,000 A/B runs (true lift +5 %) whose interval covers the truth, per kind."""
    rng = np.random.default_rng(555)
    covered = dict.fromkeys(CATALOGUE, 0)
    for size in chunks(RUNS):
        arms = [draw_users(rng, HEAVY, size, USERS), draw_users(rng, HEAVY, size, USERS, lift=LIFT)]
        for kind, capping in CATALOGUE.items():
            control, treatment = metric_stats(arms, kind, capping)
            for c, t in zip(control, treatment, strict=True):
                comparison = results.compare(results.estimate(kind, t), results.estimate(kind, c))
                low, high = comparison.lift_ci_low, comparison.lift_ci_high
                covered[kind] += low is not None and high is not None and low <= estimands[kind] <= high
    return {kind: count / RUNS for kind, count in covered.items()}


@pytest.mark.parametrize("kind", list(CATALOGUE))
def test_a_true_five_percent_lift_is_covered(
    kind: str, estimands: dict[str, float], coverage: dict[str, float]
) -> None:
    truth, share = estimands[kind], coverage[kind]
    print(f"\n{kind}: true lift {truth:+.3%}, covered {share:.2%}")
    assert 0.935 <= share <= 0.965, f"{kind}: the 95% interval covered {truth:+.3%} in {share:.2%}"
