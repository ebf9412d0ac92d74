"""schemathesis hooks for .ci/schemathesis: keep generated bodies to what the
OpenAPI document means but JSON Schema cannot say.

JSON Schema has no "items unique by one property", so the document states in
its description that variant names must differ; bodies with a repeated
variant name are not generated (the server refuses them with 422, 22023).

Nor can it say "from_day on or before to_day" when a missing day defaults to
the experiment's start or end (data the schema does not know): for
admin-experiment-results a reversed window is a 422 by design, so only windows
with both days given in order, or neither, are generated. Likewise a layer
range must have layer_from < layer_to (said in the field descriptions).

The same goes for the other rules that tie fields together or depend on
stored data, each refused with a 422 by design and stated in the
descriptions: layer_from and layer_to come together; a user_rate metric is
never capped (nor is capping updated here: the stored kind is data); a metric
set holds a goal; a metric update changes something; a winner is one of the
experiment's variants (data the schema cannot know); and whole numbers are
JSON integers (20, not 20.0: the functions parse strictly, JSON Schema cannot
tell the two apart).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import schemathesis


def _repeats_a_variant_name(body: Any) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("variants"), list):
        return False
    names = [
        v.get("name") for v in body["variants"] if isinstance(v, dict) and isinstance(v.get("name"), str)
    ]
    return len(names) != len(set(names))


def _day(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _may_reverse_a_window(path: str, body: Any) -> bool:
    if not path.endswith("/admin-experiment-results") or not isinstance(body, dict):
        return False
    first, last = body.get("from_day"), body.get("to_day")
    if first is None and last is None:
        return False
    a, b = _day(first), _day(last)
    return a is None or b is None or a > b


def _reverses_a_layer_range(body: Any) -> bool:
    """layer_from < layer_to is stated in the description, not expressible in the schema."""
    if not isinstance(body, dict):
        return False
    low, high = body.get("layer_from"), body.get("layer_to")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    return numbers and low >= high


def _half_a_layer_range(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    return (body.get("layer_from") is None) != (body.get("layer_to") is None)


def _breaks_a_cross_field_rule(path: str, body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    if path.endswith("/admin-create-metric"):
        return body.get("kind") == "user_rate" and body.get("capping") not in (None, 0)
    if path.endswith("/admin-update-metric"):
        # capping is refused for a stored user_rate metric: its kind is data
        nothing = all(body.get(f) is None for f in ("name", "description", "direction", "capping"))
        return nothing or body.get("capping") not in (None, 0)
    if path.endswith("/admin-set-experiment-metrics"):
        metrics = body.get("metrics")
        return isinstance(metrics, list) and not any(
            isinstance(m, dict) and m.get("role") == "goal" for m in metrics
        )
    if path.endswith(("/admin-record-decision", "/admin-end-experiment")):
        return body.get("winner") is not None
    if path.endswith("/admin-experiment-plan"):
        days = body.get("days")
        return isinstance(days, list) and any(isinstance(d, float) for d in days)
    return False


def _keep(operation: Any, body: Any) -> bool:
    path = str(getattr(operation, "path", ""))
    return (
        not _repeats_a_variant_name(body)
        and not _may_reverse_a_window(path, body)
        and not _reverses_a_layer_range(body)
        and not _half_a_layer_range(body)
        and not _breaks_a_cross_field_rule(path, body)
    )


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    return _keep(context.operation, body)


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    # the coverage phase builds its cases without filter_body
    return _keep(case.operation, case.body)
