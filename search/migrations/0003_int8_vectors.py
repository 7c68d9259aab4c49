"""Stored vectors go from float16 to int8 codes with a per-vector float32 scale (half the bytes again), and the
index on embedding_model goes: no query can use it (pending rows are found by inequality, search by room).

The codecs are copied here rather than imported, so this migration keeps meaning what it meant.
"""

import numpy as np
from django.db import migrations

BATCH = 2000


def float16_to_int8(blob: bytes) -> bytes:
    vector = np.frombuffer(bytes(blob), dtype=np.float16).astype(np.float32)
    peak = float(np.abs(vector).max()) if vector.size else 0.0
    scale = peak / 127.0 if peak > 0 else 1.0
    return np.float32(scale).tobytes() + np.clip(np.rint(vector / scale), -127, 127).astype(np.int8).tobytes()


def int8_to_float16(blob: bytes) -> bytes:
    data = bytes(blob)
    scale = np.frombuffer(data[:4], dtype="<f4")[0]
    return (np.frombuffer(data[4:], dtype=np.int8).astype(np.float32) * scale).astype(np.float16).tobytes()


def convert(apps, convert_one) -> None:
    document_model = apps.get_model("search", "Document")
    last = 0
    while True:
        rows = list(document_model.objects.filter(pk__gt=last, vector__isnull=False).order_by("pk")
                    .values_list("pk", "vector")[:BATCH])
        if not rows:
            return
        document_model.objects.bulk_update([document_model(pk=pk, vector=convert_one(blob)) for pk, blob in rows],
                                           ["vector"], batch_size=500)
        last = rows[-1][0]


def forwards(apps, schema_editor) -> None:
    convert(apps, float16_to_int8)


def backwards(apps, schema_editor) -> None:
    convert(apps, int8_to_float16)


class Migration(migrations.Migration):
    dependencies = [("search", "0002_fulltext")]

    operations = [
        migrations.RemoveIndex(model_name="document", name="document_embedding_model"),
        migrations.RunPython(forwards, backwards),
    ]
