"""Request bodies, one model per function.

Strict on purpose: unknown fields are refused, ``"1"`` is not a number and
``true`` is not an integer (``30.0`` is 30, as JSON Schema has it). Field
names are the RPC argument names without the ``experiment_`` prefix.

The OpenAPI document is generated from these models and says what they
accept, no more and no less: what the schema allows either passes here and
in the database or is a 404/409 about data (unknown key, wrong state). The
database validates again (duplicate variant names) and the function maps
its errors.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.rpcs import EXPERIMENT_OPTIONS

KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
VARIANT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# One amount of one unit ("7 days", "12 hours", "1 year"), positive and at most
# 100 years, as the database bounds the rotation interval: each unit's
# largest amount stays within that.
INTERVAL_PATTERN = (
    r"^(?:[1-9][0-9]{0,3} (?:second|minute|hour|day)"
    r"|[1-9][0-9]{0,2} (?:week|month)"
    r"|[1-9][0-9]? year)s?$"
)
# What the JSON Schema says of text fields that refuse U+0000.
NO_NUL_PATTERN = r"^[^\x00]*$"


def _no_nul(value: str) -> str:
    # Postgres text cannot hold U+0000; refuse it here instead of a database error.
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain NUL (\\u0000) characters")
    return value


ExperimentKey = Annotated[str, Field(pattern=KEY_PATTERN, description="Experiment key.")]
VariantName = Annotated[str, Field(pattern=VARIANT_PATTERN)]


def _whole_number_as_int(value: Any) -> Any:
    # JSON Schema's integer is any number with a zero fraction: 30.0 is 30.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


MIN_WEIGHT = 0.000001  # the smallest positive weight the database takes
MAX_WEIGHT = 1_000_000


def _weight_in_range(value: int | float) -> int | float:
    if not (value == 0 or MIN_WEIGHT <= value <= MAX_WEIGHT):  # also false for NaN
        raise PydanticCustomError("weight_range", "Weight must be 0 or between 0.000001 and 1000000")
    return value


# int or float, kept as sent (50 stays 50, not 50.0); bounded as the database bounds it.
Weight = Annotated[
    int | float,
    AfterValidator(_weight_in_range),
    WithJsonSchema(
        {"anyOf": [{"const": 0}, {"type": "number", "minimum": MIN_WEIGHT, "maximum": MAX_WEIGHT}]}
    ),
]
_NO_NUL = {"pattern": NO_NUL_PATTERN}
Name = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra=_NO_NUL), AfterValidator(_no_nul)]
Description = Annotated[str, Field(max_length=5000, json_schema_extra=_NO_NUL), AfterValidator(_no_nul)]
Salt = Annotated[str, Field(min_length=1, max_length=256, json_schema_extra=_NO_NUL), AfterValidator(_no_nul)]
IntervalText = Annotated[
    str,
    Field(
        pattern=INTERVAL_PATTERN,
        description='One positive amount of one unit, at most 100 years: "7 days", "12 hours", "1 month".',
    ),
]
MaxRows = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_whole_number_as_int)]
SearchQuery = Annotated[
    str, Field(min_length=1, max_length=320, json_schema_extra=_NO_NUL), AfterValidator(_no_nul)
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Variant(Body):
    """One arm of an experiment; traffic share is weight / sum of weights."""

    name: VariantName
    weight: Weight


def _some_positive_weight(variants: list[Variant]) -> list[Variant]:
    if not any(v.weight > 0 for v in variants):
        raise PydanticCustomError("all_weights_zero", "at least one variant needs a positive weight")
    return variants


Variants = Annotated[
    list[Variant],
    Field(
        min_length=1,
        max_length=100,
        description="Variant names must differ; at least one weight must be positive.",
        json_schema_extra={
            # what JSON Schema can say of it; names must differ too
            "uniqueItems": True,
            "contains": {"type": "object", "properties": {"weight": {"minimum": MIN_WEIGHT}}},
        },
    ),
    AfterValidator(_some_positive_weight),
]


LayerKey = Annotated[str, Field(pattern=KEY_PATTERN, description="Layer key.")]
# Leaving a layer (update, while draft) is the empty key.
LayerKeyOrNone = Annotated[
    str,
    Field(
        pattern=r"^$|" + KEY_PATTERN,
        description='Layer key; "" takes a draft out of its layer.',
    ),
]
LAYER_BUCKETS = 10_000
Coverage = Annotated[
    float,
    Field(ge=0, le=1, description="Share of eligible users who enter (0 to 1); raising it moves nobody."),
]
LayerFrom = Annotated[
    int,
    Field(
        ge=0,
        le=LAYER_BUCKETS - 1,
        description="First bucket of the range (with layer_to, which must be greater).",
    ),
    BeforeValidator(_whole_number_as_int),
]
LayerTo = Annotated[
    int,
    Field(ge=1, le=LAYER_BUCKETS, description="End of the half-open range [layer_from, layer_to)."),
    BeforeValidator(_whole_number_as_int),
]
SequentialTuning = Annotated[
    int,
    Field(ge=100, le=10_000_000, description="Users per variant the sequential test is tuned for."),
    BeforeValidator(_whole_number_as_int),
]
CupedDays = Annotated[
    int,
    Field(ge=0, le=60, description="Pre-period days for CUPED (0 = off)."),
    BeforeValidator(_whole_number_as_int),
]
_RANGE_TOGETHER = {"layer_from": ["layer_to"], "layer_to": ["layer_from"]}


def _check_range(low: int | None, high: int | None) -> None:
    if (low is None) != (high is None):
        raise PydanticCustomError("layer_range_half", "give both layer_from and layer_to, or neither")
    if low is not None and high is not None and low >= high:
        raise PydanticCustomError("layer_range_order", "layer_from must be less than layer_to")


class CreateExperiment(Body):
    """Create a draft experiment (random salt unless one is given), optionally
    on part of the traffic (coverage) and in a layer range."""

    model_config = ConfigDict(
        json_schema_extra={
            "dependentRequired": {key: [*other, "layer_key"] for key, other in _RANGE_TOGETHER.items()}
        }
    )
    key: ExperimentKey
    variants: Variants
    admin_id: UUID
    name: Name | None = None
    description: Description | None = None
    salt: Salt | None = None
    salt_rotation_interval: IntervalText | None = None
    coverage: Coverage | None = None
    layer_key: LayerKey | None = None
    layer_from: LayerFrom | None = None
    layer_to: LayerTo | None = None
    sequential: bool | None = None
    sequential_tuning: SequentialTuning | None = None
    cuped_days: CupedDays | None = None

    @model_validator(mode="after")
    def _range(self) -> Self:
        _check_range(self.layer_from, self.layer_to)
        if self.layer_from is not None and self.layer_key is None:
            raise PydanticCustomError("layer_range_without_layer", "layer_from and layer_to need a layer_key")
        return self


_UPDATABLE = ("name", "description", "variants", "salt_rotation_interval", *EXPERIMENT_OPTIONS)


class UpdateExperiment(Body):
    """Change an experiment; omitted fields stay as they are. Variants, layer
    and range only while draft; coverage and settings until it ends."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [field], "properties": {field: {"not": {"type": "null"}}}}
                for field in _UPDATABLE
            ],
            "dependentRequired": {"layer_from": ["layer_to"], "layer_to": ["layer_from"]},
            # leaving the layer ("") takes no range
            "if": {"required": ["layer_key"], "properties": {"layer_key": {"const": ""}}},
            "then": {"properties": {"layer_from": {"type": "null"}, "layer_to": {"type": "null"}}},
        }
    )
    key: ExperimentKey
    admin_id: UUID
    name: Name | None = None
    description: Description | None = None
    variants: Variants | None = None
    salt_rotation_interval: IntervalText | None = None
    coverage: Coverage | None = None
    layer_key: LayerKeyOrNone | None = None
    layer_from: LayerFrom | None = None
    layer_to: LayerTo | None = None
    sequential: bool | None = None
    sequential_tuning: SequentialTuning | None = None
    cuped_days: CupedDays | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.model_dump(exclude_none=True).keys() <= {"key", "admin_id"}:
            raise PydanticCustomError("nothing_to_update", "send at least one of " + ", ".join(_UPDATABLE))
        _check_range(self.layer_from, self.layer_to)
        if self.layer_key == "" and self.layer_from is not None:
            raise PydanticCustomError(
                "leave_layer_with_range", 'layer_key "" (leave the layer) takes no range'
            )
        return self


class CreateLayer(Body):
    """Create a layer: experiments in it take disjoint ranges of its 10,000 buckets."""

    key: LayerKey
    admin_id: UUID
    name: Name | None = None
    description: Description | None = None


class ListLayers(Body):
    """No fields: every layer, its experiments' ranges and the free ranges."""


class ExperimentAction(Body):
    """Activate an experiment (draft → active)."""

    key: ExperimentKey
    admin_id: UUID


Decision = Literal["shipped", "rolled_back", "inconclusive"]
Notes = Annotated[str, Field(max_length=5000, json_schema_extra=_NO_NUL), AfterValidator(_no_nul)]
# What JSON Schema can say of the pairing the validator checks: a winner
# exactly when the decision is shipped.
_WINNER_WITH_SHIPPED: dict[str, Any] = {
    "allOf": [
        {
            "if": {"required": ["winner"], "properties": {"winner": {"type": "string"}}},
            "then": {"required": ["decision"], "properties": {"decision": {"const": "shipped"}}},
        },
        {
            "if": {"required": ["decision"], "properties": {"decision": {"const": "shipped"}}},
            "then": {"required": ["winner"], "properties": {"winner": {"type": "string"}}},
        },
    ]
}


def _winner_with_shipped(decision: str | None, winner: str | None) -> None:
    if winner is not None and decision != "shipped":
        raise PydanticCustomError("winner_without_shipped", 'a winner goes with "decision": "shipped"')
    if decision == "shipped" and winner is None:
        raise PydanticCustomError("shipped_without_winner", '"decision": "shipped" needs the winner variant')


class EndExperiment(Body):
    """End an experiment (active → ended), optionally recording the decision:
    shipped (with the winning variant), rolled_back or inconclusive."""

    model_config = ConfigDict(json_schema_extra=_WINNER_WITH_SHIPPED)
    key: ExperimentKey
    admin_id: UUID
    decision: Decision | None = None
    winner: VariantName | None = None
    notes: Notes | None = None

    @model_validator(mode="after")
    def _pairing(self) -> Self:
        _winner_with_shipped(self.decision, self.winner)
        return self


class RecordDecision(Body):
    """Record or change the decision of an ended experiment (decision, winner
    and notes are set together: notes left out means no notes)."""

    model_config = ConfigDict(json_schema_extra=_WINNER_WITH_SHIPPED)
    key: ExperimentKey
    admin_id: UUID
    decision: Decision
    winner: VariantName | None = None
    notes: Notes | None = None

    @model_validator(mode="after")
    def _pairing(self) -> Self:
        _winner_with_shipped(self.decision, self.winner)
        return self


class RotateSalt(Body):
    """Either one experiment ``{key, admin_id, reassign?}`` or the scheduler's ``{"due": true}``."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["key", "admin_id"],
                    "properties": {
                        "key": {"type": "string"},
                        "admin_id": {"type": "string"},
                        "due": {"type": "null"},
                    },
                },
                {"required": ["due"], "properties": {"due": {"const": True}, "key": {"type": "null"}}},
            ]
        }
    )

    key: ExperimentKey | None = None
    # A plain bool (strict: 1 is refused) that the validator requires to be true.
    due: Annotated[bool, WithJsonSchema({"const": True})] | None = None
    admin_id: UUID | None = None
    reassign: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if self.due is False:
            raise PydanticCustomError("due_not_true", 'due must be true: {"due": true}')
        if self.key is not None and self.due:
            raise PydanticCustomError("key_and_due", "send either key or due, not both")
        if self.key is None and not self.due:
            raise PydanticCustomError(
                "no_target", 'send key (one experiment) or "due": true (all that are due)'
            )
        if self.key is not None and self.admin_id is None:
            raise PydanticCustomError("admin_id_required", "admin_id is required with key")
        return self


class SetUserVariant(Body):
    """Pin a user to a variant (a manual override)."""

    key: ExperimentKey
    user_id: UUID
    variant: VariantName
    admin_id: UUID


class ResetUserVariant(Body):
    """Remove a user's manual override; the rule of docs/reference.md §2 applies again."""

    key: ExperimentKey
    user_id: UUID
    admin_id: UUID


OffsetRows = Annotated[int, Field(ge=0, le=2**31 - 1), BeforeValidator(_whole_number_as_int)]


class ListExperiments(Body):
    """Experiments with assignment counts, newest first: optionally of one
    status, matching a search (case-insensitive substring of key or name),
    one page of them (every row carries total_rows, the count before paging)."""

    status: Literal["draft", "active", "ended"] | None = None
    search: Name | None = None
    max_rows: MaxRows | None = None
    offset_rows: OffsetRows | None = None


class GetExperiment(Body):
    """One experiment, its assignment counts and its daily metrics series
    (from_day after to_day is an empty range: no days)."""

    key: ExperimentKey
    from_day: date | None = None
    to_day: date | None = None

    @property
    def empty_range(self) -> bool:
        return self.from_day is not None and self.to_day is not None and self.from_day > self.to_day


class ExperimentResults(Body):
    """Per-user statistics of one experiment over a window of UTC days (default: while it ran)."""

    key: ExperimentKey
    from_day: date | None = None
    to_day: date | None = None
    series: bool = Field(False, description="Add one point per day: the comparisons of [from_day, that day].")

    @model_validator(mode="after")
    def _ordered_days(self) -> Self:
        if self.from_day and self.to_day and self.from_day > self.to_day:
            raise PydanticCustomError("day_order", "from_day must not be after to_day")
        return self


PlanDays = Annotated[int, Field(ge=1, le=28, description="A run length in days (1 to 28).")]


class ExperimentPlan(Body):
    """How small an effect runs of some lengths would detect, from recent traffic."""

    key: ExperimentKey
    days: Annotated[list[PlanDays], Field(min_length=1, max_length=28)] = [7, 14, 28]


MetricKind = Literal[
    "impression_rate", "value_per_impression", "per_user_count", "per_user_value", "user_rate"
]
Direction = Literal["increase", "decrease"]
MetricKey = Annotated[str, Field(pattern=KEY_PATTERN, description="Metric key.")]
OutcomeName = Annotated[
    str, Field(pattern=r"^[a-z0-9_.-]{1,64}$", description="One outcome name; leave out for any outcome.")
]
Capping = Annotated[
    float,
    Field(
        gt=0, lt=1, description="Winsorise each user at this quantile over all analysed users (e.g. 0.999)."
    ),
]
CappingChange = Annotated[float, Field(ge=0, lt=1, description="A new capping quantile; 0 removes capping.")]


class CreateMetric(Body):
    """Define a metric. ``user_rate`` metrics cannot be capped."""

    key: MetricKey
    kind: MetricKind
    admin_id: UUID
    name: Name | None = None
    description: Description | None = None
    outcome: OutcomeName | None = None
    direction: Direction | None = None
    capping: Capping | None = None

    @model_validator(mode="after")
    def _user_rate_uncapped(self) -> Self:
        if self.kind == "user_rate" and self.capping is not None:
            raise PydanticCustomError("user_rate_capped", "a user_rate metric cannot be capped")
        return self


class UpdateMetric(Body):
    """Change a metric; omitted fields stay. Kind and outcome are fixed; built-ins cannot change."""

    key: MetricKey
    admin_id: UUID
    name: Name | None = None
    description: Description | None = None
    direction: Direction | None = None
    capping: CappingChange | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.model_dump(exclude_none=True).keys() <= {"key", "admin_id"}:
            raise PydanticCustomError(
                "nothing_to_update", "send at least one of name, description, direction, capping"
            )
        return self


class ListMetrics(Body):
    """No fields: every metric definition."""


class MetricRole(Body):
    metric: MetricKey
    role: Literal["goal", "guardrail", "secondary"]


def _one_goal(metrics: list[MetricRole]) -> list[MetricRole]:
    if not any(m.role == "goal" for m in metrics):
        raise PydanticCustomError("no_goal", "a metric set needs at least one goal")
    if len({m.metric for m in metrics}) != len(metrics):
        raise PydanticCustomError("metric_twice", "each metric may appear once")
    return metrics


class SetExperimentMetrics(Body):
    """The metrics an experiment is judged on, in order; at least one goal."""

    key: ExperimentKey
    metrics: Annotated[
        list[MetricRole],
        Field(min_length=1, max_length=50, json_schema_extra={"uniqueItems": True}),
        AfterValidator(_one_goal),
    ]
    admin_id: UUID


class SearchUsers(Body):
    """Users by exact uuid or e-mail prefix."""

    query: SearchQuery
    max_rows: MaxRows | None = None


class UserAssignments(Body):
    """Every experiment a user is in."""

    user_id: UUID


class AuditLog(Body):
    """Audit entries, newest first, optionally for one experiment."""

    key: ExperimentKey | None = None
    max_rows: MaxRows | None = None


class WhoAmI(Body):
    """No fields: the answer is about the caller."""


def rpc_args(body: BaseModel, **renames: str) -> dict[str, Any]:
    """The body as RPC arguments: JSON-ready, omitted optionals left out, fields renamed."""
    args = body.model_dump(mode="json", exclude_none=True)
    return {renames.get(name, name): value for name, value in args.items()}
