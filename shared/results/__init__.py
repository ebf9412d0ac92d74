"""Experiment results from sufficient statistics (docs/reference.md, results).

The database returns sums over analysed users per variant and per metric;
this package turns them into metrics, comparisons, corrections and the
verdict, each formula a small pure function:

- ``estimators``: a metric's value and variance by kind (mean or ratio);
- ``intervals``: normal-test p-values, Fieller intervals, the sequential radius;
- ``corrections``: Holm over the goals;
- ``compare``: one comparison, with its nulls;
- ``verdict``: better / worse / inconclusive / srm, and the summary sentence;
- ``counts``: any-outcome counts, the sample-ratio check;
- ``answer``: the whole answer and its warnings.

The same functions serve the admin function, ``recsys-exp results``, the
demo and the calibration tests. Anything that cannot be computed is
``None`` (JSON ``null``), never NaN.
"""

from shared.results.answer import analyse, metric_warnings, warnings
from shared.results.compare import Comparison, compare
from shared.results.corrections import holm
from shared.results.counts import (
    BUILTINS,
    SRM_ALPHA,
    VariantStats,
    builtin_stats,
    per_impression_p_value,
    srm_p_value,
)
from shared.results.estimators import KINDS, MIN_USERS, Estimate, MetricStats, estimate, mean, ratio
from shared.results.intervals import Q_95, fieller, sequential_p, sequential_radius
from shared.results.verdict import summary, verdict, verdicts

METRICS = tuple(BUILTINS)

__all__ = [
    "BUILTINS",
    "KINDS",
    "METRICS",
    "MIN_USERS",
    "Q_95",
    "SRM_ALPHA",
    "Comparison",
    "Estimate",
    "MetricStats",
    "VariantStats",
    "analyse",
    "builtin_stats",
    "compare",
    "estimate",
    "fieller",
    "holm",
    "mean",
    "metric_warnings",
    "per_impression_p_value",
    "ratio",
    "sequential_p",
    "sequential_radius",
    "srm_p_value",
    "summary",
    "verdict",
    "verdicts",
    "warnings",
]
