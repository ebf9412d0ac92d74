"""Request bodies, one model per function.

Strict on purpose: unknown fields are refused, ``"1"`` is not a number and
``true`` is not an integer. Field names are the RPC argument names without
the ``experiment_`` prefix; the database validates again (duplicates,
all-zero weights, interval text) and the function maps its errors.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
VARIANT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# Postgres interval text ("7 days", "1 day 02:00", "P7D"); the database parses it.
INTERVAL_PATTERN = r"^[0-9A-Za-z @:.+-]+$"


def _no_nul(value: str) -> str:
    # Postgres text cannot hold U+0000; refuse it here instead of a database error.
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain NUL (\\u0000) characters")
    return value


ExperimentKey = Annotated[str, Field(pattern=KEY_PATTERN, description="Experiment key.")]
VariantName = Annotated[str, Field(pattern=VARIANT_PATTERN)]


def _weight_in_range(value: int | float) -> int | float:
    if not 0 <= value <= 1_000_000:  # also false for NaN
        raise PydanticCustomError("weight_range", "Weight must be between 0 and 1000000")
    return value


# int or float, kept as sent (50 stays 50, not 50.0); bounded as the database bounds it.
Weight = Annotated[
    int | float,
    AfterValidator(_weight_in_range),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1_000_000}),
]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Description = Annotated[str, Field(max_length=5000), AfterValidator(_no_nul)]
Salt = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_no_nul)]
IntervalText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=INTERVAL_PATTERN,
        description='Postgres interval text, e.g. "7 days".',
    ),
]
MaxRows = Annotated[int, Field(ge=1, le=1000)]
SearchQuery = Annotated[str, Field(min_length=1, max_length=320), AfterValidator(_no_nul)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Variant(Body):
    """One arm of an experiment; traffic share is weight / sum of weights."""

    name: VariantName
    weight: Weight


Variants = Annotated[list[Variant], Field(min_length=1, max_length=100)]


class CreateExperiment(Body):
    """Create a draft experiment (random salt unless one is given)."""

    key: ExperimentKey
    variants: Variants
    admin_id: UUID
    name: Name | None = None
    description: Description | None = None
    salt: Salt | None = None
    salt_rotation_interval: IntervalText | None = None


class UpdateExperiment(Body):
    """Change an experiment; omitted fields stay as they are. Variants only while draft."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [field]}
                for field in ("name", "description", "variants", "salt_rotation_interval")
            ]
        }
    )
    key: ExperimentKey
    admin_id: UUID
    name: Name | None = None
    description: Description | None = None
    variants: Variants | None = None
    salt_rotation_interval: IntervalText | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.model_dump(exclude_none=True).keys() <= {"key", "admin_id"}:
            raise PydanticCustomError(
                "nothing_to_update",
                "send at least one of name, description, variants, salt_rotation_interval",
            )
        return self


class ExperimentAction(Body):
    """Activate (draft → active) or end (active → ended) an experiment."""

    key: ExperimentKey
    admin_id: UUID


class RotateSalt(Body):
    """Either one experiment ``{key, admin_id, reassign?}`` or the scheduler's ``{"due": true}``."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["key", "admin_id"]}, {"required": ["due"]}]}
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


class ListExperiments(Body):
    """Experiments with assignment counts, optionally one status only."""

    status: Literal["draft", "active", "ended"] | None = None


class GetExperiment(Body):
    """One experiment, its assignment counts and its daily metrics series."""

    key: ExperimentKey
    from_day: date | None = None
    to_day: date | None = None

    @model_validator(mode="after")
    def _ordered_days(self) -> Self:
        if self.from_day and self.to_day and self.from_day > self.to_day:
            raise PydanticCustomError("day_order", "from_day must not be after to_day")
        return self


class ExperimentResults(Body):
    """Per-user statistics of one experiment over a window of UTC days (default: while it ran)."""

    key: ExperimentKey
    from_day: date | None = None
    to_day: date | None = None

    @model_validator(mode="after")
    def _ordered_days(self) -> Self:
        if self.from_day and self.to_day and self.from_day > self.to_day:
            raise PydanticCustomError("day_order", "from_day must not be after to_day")
        return self


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


def rpc_args(body: BaseModel, **renames: str) -> dict[str, Any]:
    """The body as RPC arguments: JSON-ready, omitted optionals left out, fields renamed."""
    args = body.model_dump(mode="json", exclude_none=True)
    return {renames.get(name, name): value for name, value in args.items()}
