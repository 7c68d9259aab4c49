"""`plainly_valid` may only accept what the DRF serializer accepts, and must produce the same data."""

from __future__ import annotations

import pytest

from chat.serializers import GenerationOptionsSerializer, MessageSendSerializer, plainly_valid

CASES = [
    {"content": "hi"},
    {"content": "hi", "model": "fake-llm:latest", "temperature": 0.2, "top_p": 1, "top_k": 5, "max_tokens": 64},
    {"content": "  spaced  ", "system_prompt": "Be brief.", "use_recursive": False, "repeat_penalty": 1.0},
    {"content": "hi", "max_tokens": None},
    {"content": "hi", "extra": "ignored"},
    {"content": "hi", "model": ""},
    {"content": ""},
    {"content": "   "},
    {"content": None},
    {"content": 5},
    {"content": "a\x00b"},
    {"content": "\ud800"},
    {"content": "x" * 40_000},
    {"model": "m"},
    {"content": "hi", "temperature": "0.5"},
    {"content": "hi", "temperature": 2.5},
    {"content": "hi", "temperature": True},
    {"content": "hi", "temperature": None},
    {"content": "hi", "top_k": 5.0},
    {"content": "hi", "top_k": -1},
    {"content": "hi", "max_tokens": 0},
    {"content": "hi", "model": " padded "},
    {"content": "hi", "model": "m" * 201},
    {"content": "hi", "use_recursive": "true"},
    {"content": "hi", "system_prompt": None},
    [],
    "content",
]


@pytest.mark.parametrize("data", CASES)
@pytest.mark.parametrize("serializer_class", [MessageSendSerializer, GenerationOptionsSerializer])
def test_fast_path_agrees_with_drf(serializer_class, data):
    fast = plainly_valid(serializer_class, data)
    serializer = serializer_class(data=data)
    valid = serializer.is_valid()
    if fast is not None:
        assert valid, f"fast path accepted what DRF rejects: {serializer.errors}"
        assert fast == dict(serializer.validated_data)


def test_fast_path_takes_the_common_requests():
    assert plainly_valid(MessageSendSerializer, {"content": "hi", "model": "m"}) == {
        "content": "hi", "model": "m", "temperature": 0.7, "top_p": 0.9, "top_k": 40, "repeat_penalty": 1.1,
        "max_tokens": None, "system_prompt": "", "use_recursive": True,
    }
    assert plainly_valid(GenerationOptionsSerializer, {"temperature": 0, "max_tokens": 8})["temperature"] == 0.0
