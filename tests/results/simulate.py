"""Simulated experiments as sufficient statistics, vectorised over many
runs: heterogeneous users (engagement probability from a Beta, impressions
per user from a Pareto tail), as real traffic looks.

Each user i gets nᵢ impressions, pᵢ ~ Beta(a, b) (times 1 + lift in the
treatment), eᵢ ~ Binomial(nᵢ, pᵢ) engaged impressions, oᵢ = eᵢ +
Binomial(eᵢ, SAVE) outcomes (a click, sometimes a save) and vᵢ ~ Gamma(oᵢ, 1),
the sum of an exponential value per outcome (watch time, say).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import integrate
from scipy import stats as sps

from shared.results import MetricStats, VariantStats


@dataclass(frozen=True)
class Population:
    beta_a: float = 2.0
    beta_b: float = 18.0
    pareto_alpha: float = 1.3
    pareto_scale: float = 3.0  # nᵢ = min(cap, floor(scale · U^(-1/alpha)))
    cap: int = 300
    save: float = 0.3

    def impressions(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        u = rng.random(shape)
        n = np.floor(self.pareto_scale * u ** (-1 / self.pareto_alpha))
        return np.minimum(self.cap, n).astype(np.int64)

    def impressions_pmf(self) -> tuple[np.ndarray, np.ndarray]:
        """P(n = k) exactly: P(n ≥ k) = min(1, (scale/k)^alpha) below the cap."""
        k = np.arange(1, self.cap + 1)
        at_least = np.minimum(1.0, (self.pareto_scale / k) ** self.pareto_alpha)
        at_least_next = np.append(at_least[1:], 0.0)
        return k, at_least - at_least_next

    def engaged_user_rate(self, lift: float = 0.0) -> float:
        """The population's true share of users with ≥ 1 engaged impression."""
        k, pmf = self.impressions_pmf()
        beta = sps.beta(self.beta_a, self.beta_b)
        scale = 1 + lift
        never = [
            integrate.quad(lambda p, n=n: (1 - min(1.0, scale * p)) ** n * beta.pdf(p), 0, 1)[0]
            for n in k[pmf > 0]
        ]
        return float(1 - np.dot(pmf[pmf > 0], never))


# Heavy users as bots and power users make them: the Pareto tail uncapped
# (10 million impressions is beyond any draw here).
HEAVY = Population(cap=10_000_000)


def simulate(
    rng: np.random.Generator, pop: Population, runs: int, users: int, lift: float = 0.0
) -> list[VariantStats]:
    """`runs` independent arms of `users` users each: one VariantStats per run."""
    n = pop.impressions(rng, (runs, users))
    p = np.minimum(1.0, rng.beta(pop.beta_a, pop.beta_b, (runs, users)) * (1 + lift))
    e = rng.binomial(n, p)
    o = e + rng.binomial(e, pop.save)
    sums = {
        "sum_n": n.sum(1),
        "sum_e": e.sum(1),
        "sum_o": o.sum(1),
        "sum_nn": (n * n).sum(1),
        "sum_ee": (e * e).sum(1),
        "sum_oo": (o * o).sum(1),
        "sum_ne": (n * e).sum(1),
        "engaged_users": (e > 0).sum(1),
    }
    return [VariantStats(users, **{name: int(v[r]) for name, v in sums.items()}) for r in range(runs)]


Users = dict[str, np.ndarray]  # n, e, o, v: (runs, users) arrays


def draw_users(rng: np.random.Generator, pop: Population, runs: int, users: int, lift: float = 0.0) -> Users:
    n = pop.impressions(rng, (runs, users))
    p = np.minimum(1.0, rng.beta(pop.beta_a, pop.beta_b, (runs, users)) * (1 + lift))
    e = rng.binomial(n, p)
    o = e + rng.binomial(e, pop.save)
    v = rng.gamma(np.maximum(o, 1e-300), 1.0) * (o > 0)
    return {"n": n.astype(float), "e": e.astype(float), "o": o.astype(float), "v": v}


NUMERATOR = {
    "impression_rate": "e",
    "value_per_impression": "v",
    "per_user_count": "o",
    "per_user_value": "v",
    "user_rate": "e",
}


def _quantile(arms: list[Users], field: str, capping: float) -> np.ndarray:
    pooled = np.concatenate([arm[field] for arm in arms], axis=1)
    return np.quantile(pooled, capping, axis=1, method="linear")[:, None]  # = percentile_cont


def per_user(arms: list[Users], kind: str, capping: float | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(n, a) per arm after capping, as the database computes them."""
    field = NUMERATOR[kind]
    ratio = kind in ("impression_rate", "value_per_impression")
    cap_n = _quantile(arms, "n", capping) if capping is not None and ratio else None
    cap_a = _quantile(arms, field, capping) if capping is not None and kind != "impression_rate" else None
    out = []
    for arm in arms:
        n, a = arm["n"], arm[field]
        if kind == "user_rate":
            a = (a > 0).astype(float)
        if cap_a is not None:
            a = np.minimum(a, cap_a)
        if cap_n is not None:
            scale = np.minimum(1.0, cap_n / n)
            n, a = n * scale, a * scale
        out.append((n, a))
    return out


def metric_stats(arms: list[Users], kind: str, capping: float | None) -> list[list[MetricStats]]:
    """One MetricStats per arm and run."""
    out = []
    for n, a in per_user(arms, kind, capping):
        sums = [n.sum(1), (n * n).sum(1), a.sum(1), (a * a).sum(1), (a * n).sum(1)]
        out.append([MetricStats(n.shape[1], *(float(s[r]) for s in sums)) for r in range(n.shape[0])])
    return out


def chunks(runs: int, size: int = 250) -> Iterator[int]:
    """Runs in blocks, so arrays stay small on a shared machine."""
    while runs > 0:
        yield min(size, runs)
        runs -= size
