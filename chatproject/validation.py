"""Input checks shared by every serializer: strict JSON types, 64-bit ids, text every database can store.

DRF's stock fields coerce (`{"name": 0}` becomes "0", `"pinned": "yes"` becomes True) and its IntegerField
has no bounds, so an id past the 64-bit range reached the database and failed there (a 500). JSONField and
DictField pass strings through untouched, so NUL characters (which PostgreSQL's text and jsonb refuse) and
unpaired surrogates (which no UTF-8 database can store) got as far as the database too. The fields here
turn all of these into 400s with a message naming the field.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

UNSTORABLE_TEXT = "Text may not contain NUL characters (\\u0000) or unpaired surrogates (\\ud800-\\udfff)."


def is_storable_text(value: str) -> bool:
    """Whether every supported database can store the string: no NUL, no lone surrogate."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def find_unstorable_text(value: Any) -> str | None:
    """The path (`a.b[2]`) of the first string, object key included, that cannot be stored; None if none.

    Walks the JSON value without recursion, so a deeply nested document cannot exhaust the stack.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not is_storable_text(item):
                return path or "value"
        elif isinstance(item, dict):
            for key, child in item.items():
                key_text = str(key)
                child_path = f"{path}.{key_text}" if path else key_text
                if not is_storable_text(key_text):
                    return f"{path} (a key)" if path else "a key"
                stack.append((child_path, child))
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return None


def validate_storable_json(value: Any) -> None:
    """Field validator: refuse JSON holding text that a database cannot store."""
    where = find_unstorable_text(value)
    if where is not None:
        raise serializers.ValidationError(f"{UNSTORABLE_TEXT} Found at {where}.", code="invalid_text")


class StrictStringMixin:
    """Only a JSON string is a string: numbers and booleans are refused instead of turned into text."""

    default_error_messages = {"not_a_string": "Not a valid string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictCharField(StrictStringMixin, serializers.CharField):
    """A CharField that refuses non-strings (DRF's also refuses NUL characters and lone surrogates)."""


class StrictRegexField(StrictStringMixin, serializers.RegexField):
    pass


class StrictEmailField(StrictStringMixin, serializers.EmailField):
    pass


class StrictUUIDField(StrictStringMixin, serializers.UUIDField):
    pass


class StrictBooleanField(serializers.BooleanField):
    """Only JSON true and false: "yes", 1 and "maybe" are refused."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class Int64Field(serializers.IntegerField):
    """An IntegerField bounded to the signed 64-bit range by default, so no value overflows a database column."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", INT64_MIN)
        kwargs.setdefault("max_value", INT64_MAX)
        super().__init__(**kwargs)


class StorableJSONField(serializers.JSONField):
    """A JSONField whose strings and keys can be stored by every database (PostgreSQL's jsonb included)."""

    def __init__(self, **kwargs):
        kwargs["validators"] = [*kwargs.get("validators", []), validate_storable_json]
        super().__init__(**kwargs)


class StrictModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose generated text, boolean and JSON fields are the strict ones above."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.SlugField: StrictCharField,
        models.BooleanField: StrictBooleanField,
        models.JSONField: StorableJSONField,
    }


def validated_id(value: Any, name: str) -> int:
    """A positive 64-bit id from a URL or query string, else a 400 naming `name`."""
    field = Int64Field(min_value=1)
    try:
        return field.run_validation(value)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({name: exc.detail}) from exc
