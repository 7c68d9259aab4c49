"""The full-text index of search_document, in each database's own way.

SQLite: an FTS5 table over search_document (external content, porter stemming), kept in step by triggers, so
every insert, update and delete through any path (the ORM's cascades and the panic wipe included) reaches it.
PostgreSQL: a GIN index on to_tsvector('english', text), the expression `search.fulltext` queries with.
"""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations

SQLITE_CREATE = [
    "CREATE VIRTUAL TABLE search_document_fts USING fts5("
    "text, content='search_document', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER search_document_fts_insert AFTER INSERT ON search_document BEGIN "
    "INSERT INTO search_document_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER search_document_fts_delete AFTER DELETE ON search_document BEGIN "
    "INSERT INTO search_document_fts(search_document_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER search_document_fts_update AFTER UPDATE OF text ON search_document BEGIN "
    "INSERT INTO search_document_fts(search_document_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO search_document_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO search_document_fts(search_document_fts) VALUES ('rebuild')",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS search_document_fts_update",
    "DROP TRIGGER IF EXISTS search_document_fts_delete",
    "DROP TRIGGER IF EXISTS search_document_fts_insert",
    "DROP TABLE IF EXISTS search_document_fts",
]
FULLTEXT_CONFIG = "english"
PG_INDEX_NAME = "search_document_tsv"


def pg_index() -> GinIndex:
    return GinIndex(SearchVector("text", config=FULLTEXT_CONFIG), name=PG_INDEX_NAME)


def create(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement)
    elif vendor == "postgresql":
        schema_editor.add_index(apps.get_model("search", "Document"), pg_index())


def drop(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)
    elif vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("search", "Document"), pg_index())


class Migration(migrations.Migration):
    dependencies = [("search", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
