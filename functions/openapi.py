"""The OpenAPI 3.1 document, generated from the request models."""

from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from functions.registry import Function

_ERRORS = {
    "400": "Body is not a JSON object.",
    "401": "No API key, or an invalid or expired access token, or one whose session has been signed out.",
    "403": (
        "The key is not a secret (service-level) key, the user is not in rec_admins "
        "(or is a viewer calling a write, or sent another admin_id), or the database refused."
    ),
    "404": "Unknown experiment or layer.",
    "409": "Duplicate key, a layer range another experiment holds, or the experiment is in the wrong state.",
    "413": "Body larger than 64 KiB.",
    "422": "Invalid fields; details lists them.",
    "503": "Database unreachable, busy, or migrations not applied.",
}

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}


def openapi_document(functions: dict[str, Function]) -> dict[str, Any]:
    mode: Literal["validation"] = "validation"
    models: list[tuple[type[BaseModel], Literal["validation"]]] = [
        (spec.body, mode) for spec in functions.values()
    ]
    refs, schemas = models_json_schema(models, ref_template="#/components/schemas/{model}")
    paths = {
        f"/functions/v1/{name}": {"post": _operation(spec, refs[(spec.body, mode)])}
        for name, spec in functions.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Recsys Experiments admin functions", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {**schemas.get("$defs", {}), "Error": _ERROR_SCHEMA},
            "securitySchemes": {
                "apikey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "apikey",
                    "description": "A secret key (sb_secret_...).",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "The legacy service-role JWT, or a Supabase Auth access token of a user "
                        "in rec_admins (viewer: read functions only; admin_id is the token's user)."
                    ),
                },
            },
        },
        "security": [{"apikey": []}, {"bearer": []}],
    }


def _accepts_empty(model: type[BaseModel]) -> bool:
    try:
        model.model_validate({})
    except ValidationError:
        return False
    return True


def _operation(spec: Function, schema: dict[str, Any]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "operationId": spec.name,
        "summary": spec.summary,
        # A body every field of which is optional may be left out (read as {}).
        "requestBody": {
            "required": not _accepts_empty(spec.body),
            "content": {"application/json": {"schema": schema}},
        },
        "responses": {
            "200": {
                "description": "The RPC's result under data.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": {}},
                        }
                    }
                },
            },
            **{status: {"description": text, **error} for status, text in _ERRORS.items()},
        },
    }
