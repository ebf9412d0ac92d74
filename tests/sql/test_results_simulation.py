"""The calibration simulations run on the Python formulas over simulated
sufficient statistics (fast). This end-to-end check ties them to SQL: the
same simulated heavy-tailed users, written as impressions and outcomes,
give the database's per-metric sums (capping included) exactly as the
simulator computes them, and the same p-values."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import numpy as np
import psycopg
import pytest

from devstack import results_report
from shared import results
from tests.results.simulate import Population, draw_users, metric_stats
from tests.sql.conftest import ADMIN, create_experiment

KEY = "sim"
AB = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
DAY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
USERS = 150  # per arm
KINDS = ["impression_rate", "value_per_impression", "per_user_count", "per_user_value", "user_rate"]
CAPPING = 0.95


def _write(conn: psycopg.Connection, arms: list[dict[str, np.ndarray]]) -> None:
    """Each user's n impressions; the first e each with a click, the first o - e
    of those with a save as well; every outcome worth v / o."""
    imp_rows, out_rows = [], []
    for arm, variant in zip(arms, ("control", "treatment"), strict=True):
        for i in range(USERS):
            who = uuid.uuid4()
            n, e, o = (int(arm[k][0, i]) for k in ("n", "e", "o"))
            value = float(arm["v"][0, i]) / o if o else 0.0
            for j in range(n):
                imp = uuid.uuid4()
                imp_rows.append((imp, who, json.dumps({"experiments": {KEY: variant}}), DAY))
                if j < e:
                    out_rows.append((imp, who, "click", value, DAY))
                if j < o - e:
                    out_rows.append((imp, who, "save", value, DAY))
    with conn.cursor() as cur:
        cur.executemany(
            "insert into rec_impressions (id, user_id, request_context, created_at) values (%s, %s, %s, %s)",
            imp_rows,
        )
        cur.executemany(
            "insert into rec_outcomes (impression_id, user_id, outcome, value, created_at)"
            " values (%s, %s, %s, %s, %s)",
            out_rows,
        )


def test_sql_sums_equal_the_simulators(db: psycopg.Connection) -> None:
    rng = np.random.default_rng(8)
    pop = Population(cap=400)  # heavy-tailed, small enough to insert
    arms = [draw_users(rng, pop, 1, USERS), draw_users(rng, pop, 1, USERS)]
    create_experiment(db, KEY, AB)
    metrics = []
    for kind in KINDS:
        for capping in (None, CAPPING):
            if kind == "user_rate" and capping is not None:
                continue
            key = f"{kind}_{'capped' if capping else 'raw'}".replace("_", "-")
            db.execute("select rec_create_metric(%s, %s, %s, capping => %s)", [key, kind, ADMIN, capping])
            metrics.append((key, kind, capping))
    db.execute(
        "select rec_set_experiment_metrics(%s, %s::jsonb, %s)",
        [KEY, json.dumps([{"metric": m[0], "role": "goal"} for m in metrics]), ADMIN],
    )
    _write(db, arms)
    row = db.execute(
        "select rec_experiment_results_stats(%s, %s, %s)", [KEY, DAY.date(), DAY.date()]
    ).fetchone()
    assert row is not None
    raw = row[0]
    got = {(r["metric"], r["variant"]): results.MetricStats.from_row(r) for r in raw["metric_stats"]}
    answer = results_report.fetch(db, KEY, DAY.date(), DAY.date())
    p_values = {c["metric"]: c["p_value"] for c in answer["comparisons"]}
    for key, kind, capping in metrics:
        control, treatment = metric_stats(arms, kind, capping)
        for variant, expected in (("control", control[0]), ("treatment", treatment[0])):
            stats = got[key, variant]
            assert stats.users == expected.users
            for field in ("sum_n", "sum_nn", "sum_a", "sum_aa", "sum_an"):
                assert float(getattr(stats, field)) == pytest.approx(getattr(expected, field), rel=1e-9), (
                    key,
                    variant,
                    field,
                )
        simulated = results.compare(results.estimate(kind, treatment[0]), results.estimate(kind, control[0]))
        assert p_values[key] == pytest.approx(simulated.p_value, rel=1e-6), key
