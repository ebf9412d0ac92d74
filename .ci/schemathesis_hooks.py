"""schemathesis hooks for .ci/schemathesis: keep generated bodies to what the
OpenAPI document means but JSON Schema cannot say.

JSON Schema has no "items unique by one property", so the document states in
its description that variant names must differ; bodies with a repeated
variant name are not generated (the server refuses them with 422, 22023).
"""

from __future__ import annotations

from typing import Any

import schemathesis


def _repeats_a_variant_name(body: Any) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("variants"), list):
        return False
    names = [
        v.get("name") for v in body["variants"] if isinstance(v, dict) and isinstance(v.get("name"), str)
    ]
    return len(names) != len(set(names))


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    return not _repeats_a_variant_name(body)


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    # the coverage phase builds its cases without filter_body
    return not _repeats_a_variant_name(case.body)
