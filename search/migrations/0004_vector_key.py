"""Each index row gets its vector's key (the stored vector's first 8 bytes as an integer), and the room index
becomes (room, vector_key, id), so the vector scan's scope query is answered from the index.
"""

from django.db import migrations, models

BATCH = 2000


def fill_keys(apps, schema_editor) -> None:
    document_model = apps.get_model("search", "Document")
    last = 0
    while True:
        rows = list(document_model.objects.filter(pk__gt=last, vector__isnull=False).order_by("pk")
                    .values_list("pk", "vector")[:BATCH])
        if not rows:
            return
        document_model.objects.bulk_update(
            [document_model(pk=pk, vector_key=int.from_bytes(bytes(blob)[:8], "little", signed=True))
             for pk, blob in rows], ["vector_key"], batch_size=500)
        last = rows[-1][0]


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0004_stream_without_room"),
        ("search", "0003_int8_vectors"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="document", name="document_room_created"),
        migrations.AddField(model_name="document", name="vector_key",
                            field=models.BigIntegerField(blank=True, null=True)),
        migrations.AddIndex(model_name="document",
                            index=models.Index(fields=["room", "vector_key", "id"], name="document_room_vector")),
        migrations.RunPython(fill_keys, migrations.RunPython.noop),
    ]
