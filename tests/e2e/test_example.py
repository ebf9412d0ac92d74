"""examples/recommender.py runs as is against the local stack and leaves
tagged impressions and an outcome behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.stack import Stack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recommender.py"


def test_the_recommender_example_runs_against_the_stack(e2e_stack: Stack) -> None:
    env = {**os.environ, "SUPABASE_URL": e2e_stack.url, "SUPABASE_SECRET_KEY": e2e_stack.keys.secret}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    user = printed["user_id"]
    assigned = e2e_stack.sql(
        """select e.key, a.variant from rec_user_experiment_assignments a
             join rec_experiments e on e.id = a.experiment_id where a.user_id = %s""",
        [user],
    )
    assert "swipe-blend" in dict(assigned)  # the seed's active experiment
    assert printed == {"user_id": user, "variants": dict(assigned), "impressions": 5}
    stored = e2e_stack.sql(
        "select request_context -> 'experiments', item_id from rec_impressions where user_id = %s", [user]
    )
    pool = "blend" if dict(assigned)["swipe-blend"] == "blend" else "base"
    assert sorted(stored) == sorted((dict(assigned), f"{pool}-item-{i}") for i in range(5))
    outcomes = e2e_stack.sql(
        """select o.outcome, i.item_id from rec_outcomes o join rec_impressions i on i.id = o.impression_id
            where o.user_id = %s""",
        [user],
    )
    assert outcomes == [("click", f"{pool}-item-0")]
