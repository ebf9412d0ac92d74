"""Simulated experiments as per-variant sufficient statistics, vectorised
over many runs: heterogeneous users (engagement probability from a Beta,
impressions per user from a capped Pareto), as real traffic looks.

Each user i gets nᵢ impressions, pᵢ ~ Beta(a, b) (times 1 + lift in the
treatment), eᵢ ~ Binomial(nᵢ, pᵢ) engaged impressions and oᵢ = eᵢ +
Binomial(eᵢ, SAVE) outcomes (a click, sometimes a save).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate
from scipy import stats as sps

from shared.results import VariantStats


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
