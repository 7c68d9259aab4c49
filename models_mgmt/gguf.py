"""The metadata at the head of a GGUF file (architecture, context length, chat template), read without the weights.

The format (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): the magic `GGUF`, a version, the tensor
and key-value counts, then typed key-value pairs. Only scalars and strings are kept; arrays (the tokenizer's
vocabulary) are skipped over, so reading a model's metadata costs milliseconds, not a parse of every token.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

MAGIC = b"GGUF"
# Value types of the format, by number: struct codes for the fixed-size ones.
FIXED = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
# A key or string longer than this is not metadata a model would carry: the file is damaged.
MAX_STRING_BYTES = 1 << 24
MAX_KEYS = 100_000

# llama.cpp's `general.file_type` numbers (enum llama_ftype), named as quantisations are usually written.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS",
    20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
}


class GGUFError(ValueError):
    """Not a GGUF file this reader understands (wrong magic, version 1, damaged header)."""


@dataclass(frozen=True)
class GGUFMetadata:
    values: dict[str, object] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return str(self.values.get("general.architecture") or "")

    @property
    def context_length(self) -> int | None:
        """The context the model was trained for: `<arch>.context_length`."""
        value = self.values.get(f"{self.architecture}.context_length")
        return int(value) if isinstance(value, int) and value > 0 else None

    @property
    def chat_template(self) -> str:
        return str(self.values.get("tokenizer.chat_template") or "")

    @property
    def parameter_size(self) -> str:
        return str(self.values.get("general.size_label") or "")

    @property
    def quantization(self) -> str:
        file_type = self.values.get("general.file_type")
        return FILE_TYPES.get(file_type, "") if isinstance(file_type, int) else ""


def _read(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise GGUFError("the header ends early")
    return data


def _number(stream: BinaryIO, code: str) -> int | float | bool:
    return struct.unpack(code, _read(stream, struct.calcsize(code)))[0]


def _string(stream: BinaryIO) -> str:
    length = int(_number(stream, "<Q"))
    if length > MAX_STRING_BYTES:
        raise GGUFError("a string in the header is implausibly long")
    return _read(stream, length).decode("utf-8", errors="replace")


def _skip_array(stream: BinaryIO) -> None:
    item_type, count = int(_number(stream, "<I")), int(_number(stream, "<Q"))
    if item_type in FIXED:
        stream.seek(struct.calcsize(FIXED[item_type]) * count, 1)
    elif item_type == STRING:
        for _ in range(count):
            stream.seek(int(_number(stream, "<Q")), 1)
    elif item_type == ARRAY:
        for _ in range(count):
            _skip_array(stream)
    else:
        raise GGUFError(f"unknown array item type {item_type}")


def read_metadata(path: Path) -> GGUFMetadata:
    """Every scalar and string key of the file's header."""
    values: dict[str, object] = {}
    with path.open("rb") as stream:
        if _read(stream, 4) != MAGIC:
            raise GGUFError("not a GGUF file")
        version = int(_number(stream, "<I"))
        if version < 2:
            raise GGUFError(f"GGUF version {version} is not supported")
        _tensors, count = int(_number(stream, "<Q")), int(_number(stream, "<Q"))
        if count > MAX_KEYS:
            raise GGUFError("implausibly many keys")
        for _ in range(count):
            key = _string(stream)
            value_type = int(_number(stream, "<I"))
            if value_type in FIXED:
                values[key] = _number(stream, FIXED[value_type])
            elif value_type == STRING:
                values[key] = _string(stream)
            elif value_type == ARRAY:
                _skip_array(stream)
            else:
                raise GGUFError(f"unknown value type {value_type}")
    return GGUFMetadata(values)


@functools.lru_cache(maxsize=256)
def _cached(path: Path, _mtime_ns: int, _size: int) -> GGUFMetadata:
    try:
        return read_metadata(path)
    except (OSError, GGUFError):
        return GGUFMetadata()


def metadata_for(path: Path) -> GGUFMetadata:
    """Cached per file version (its modification time and size); an unreadable file has empty metadata."""
    try:
        stat = path.stat()
    except OSError:
        return GGUFMetadata()
    return _cached(path, stat.st_mtime_ns, stat.st_size)
