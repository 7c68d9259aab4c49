"""Full-text matching over a scoped set of index rows: SQLite FTS5 or PostgreSQL tsvector, same answers.

The caller passes the rows it may read as a queryset; it becomes a subquery of the full-text query, so the
scope is part of the one SQL statement and nothing outside it is ever ranked or returned.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank, SearchVector
from django.db import connection
from django.db.models import F, QuerySet

from search.models import Document

CONFIG = "english"  # the PostgreSQL text search configuration the GIN index was built with
MARK_START, MARK_END = "\x02", "\x03"  # placeholders the database marks with, turned into <mark> after escaping
WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 16
# Words too common to tell rows apart; PostgreSQL's `english` configuration drops the like, so SQLite does too.
STOPWORDS = frozenset("""
a about above after again all am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers him his
how i if in into is it its itself just me more most my no nor not now of off on once only or other our ours out
over own same she should so some such than that the their theirs them then there these they this those through
to too under until up very was we were what when where which while who whom why will with would you your yours
""".split())


@dataclass(frozen=True)
class FulltextHit:
    document_id: int
    rank: float  # higher is better on both databases


def query_terms(query: str) -> list[str]:
    """Words of the query, lower-cased and de-duplicated; operators and punctuation are never passed through."""
    seen: list[str] = []
    for word in WORD.findall(query.lower()):
        if word not in seen:
            seen.append(word)
    return seen[:MAX_TERMS]


def marked(text: str) -> str:
    """Escape the database's snippet and turn its placeholders into <mark> tags."""
    return html.escape(text).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


def search_terms(query: str) -> list[str]:
    terms = query_terms(query)
    return [term for term in terms if term not in STOPWORDS] or terms  # "to be or not to be" still searches


def search(scope: QuerySet[Document], query: str, *, limit: int, prefix: bool = True,
           every_term: bool = False) -> list[FulltextHit]:
    """Rows of `scope` matching any term of the query (the last one as a prefix, for search as you type), or
    with `every_term` only rows that hold them all.

    Ranking reads no text: snippets are made afterwards, by `snippets`, for the few hits that are shown.
    """
    terms = search_terms(query)
    if not terms:
        return []
    if connection.vendor == "postgresql":
        return _postgres(scope, terms, limit=limit, prefix=prefix, every_term=every_term)
    return _sqlite(scope, terms, limit=limit, prefix=prefix, every_term=every_term)


def snippets(document_ids: list[int], query: str, *, prefix: bool = True) -> dict[int, str]:
    """The database's snippet, matched terms marked, for each of these rows that matches the query."""
    terms = search_terms(query)
    if not terms or not document_ids:
        return {}
    if connection.vendor == "postgresql":
        matching = _pg_query(terms, prefix=prefix)
        rows = (Document.objects.filter(pk__in=document_ids)
                .annotate(tsv=SearchVector("text", config=CONFIG)).filter(tsv=matching)  # matching rows only
                .annotate(snippet=SearchHeadline("text", matching, config=CONFIG, start_sel=MARK_START,
                                                 stop_sel=MARK_END, max_words=40, min_words=15, max_fragments=2,
                                                 fragment_delimiter=" … "))
                .values_list("id", "snippet"))
    else:
        marks = ", ".join(["%s"] * len(document_ids))
        sql = (f"SELECT rowid, snippet(search_document_fts, 0, '{MARK_START}', '{MARK_END}', '…', 24) "
               f"FROM search_document_fts WHERE search_document_fts MATCH %s AND rowid IN ({marks})")
        with connection.cursor() as cursor:
            cursor.execute(sql, [_fts5_query(terms, prefix=prefix), *document_ids])
            rows = cursor.fetchall()
    return {pk: marked(snippet) for pk, snippet in rows}


def _fts5_query(terms: list[str], *, prefix: bool, every_term: bool = False) -> str:
    quoted = [f'"{term}"' for term in terms]
    if prefix:
        quoted[-1] += "*"
    return (" AND " if every_term else " OR ").join(quoted)


def _sqlite(scope: QuerySet[Document], terms: list[str], *, limit: int, prefix: bool,
            every_term: bool) -> list[FulltextHit]:
    scope_sql, scope_params = scope.order_by().values("id").query.sql_with_params()
    # The unary plus keeps the scope out of FTS5's planning: offered `rowid IN (...)`, it runs the MATCH once
    # per readable row (seconds at 10k rows) instead of once, then checking each match against the list.
    sql = (
        "SELECT search_document_fts.rowid, bm25(search_document_fts) "
        "FROM search_document_fts WHERE search_document_fts MATCH %s "
        f"AND +search_document_fts.rowid IN ({scope_sql}) "
        "ORDER BY bm25(search_document_fts) LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [_fts5_query(terms, prefix=prefix, every_term=every_term), *scope_params, limit])
        rows = cursor.fetchall()
    return [FulltextHit(document_id=pk, rank=-score) for pk, score in rows]


def _pg_query(terms: list[str], *, prefix: bool, every_term: bool = False) -> SearchQuery:
    lexemes = [f"'{term}'" for term in terms]  # \w+ only, so quoting cannot be broken out of
    if prefix:
        lexemes[-1] += ":*"
    return SearchQuery((" & " if every_term else " | ").join(lexemes), config=CONFIG, search_type="raw")


def _postgres(scope: QuerySet[Document], terms: list[str], *, limit: int, prefix: bool,
              every_term: bool) -> list[FulltextHit]:
    query = _pg_query(terms, prefix=prefix, every_term=every_term)
    rows = (
        scope.annotate(tsv=SearchVector("text", config=CONFIG))  # the GIN index's own expression
        .filter(tsv=query)
        .annotate(rank=SearchRank(F("tsv"), query))
        .order_by("-rank", "id")
        .values_list("id", "rank")[:limit]
    )
    return [FulltextHit(document_id=pk, rank=float(rank)) for pk, rank in rows]


def snippet_for(text: str, terms: list[str], *, width: int = 240) -> str:
    """A snippet for a row found by meaning alone: the window around the first query term, terms marked."""
    lowered = text.lower()
    starts = [match.start() for term in terms for match in [re.search(rf"\b{re.escape(term)}", lowered)] if match]
    centre = min(starts) if starts else 0
    begin = max(0, centre - width // 3)
    if begin:
        space = text.find(" ", begin)
        begin = space + 1 if 0 <= space < centre else begin
    window = text[begin:begin + width]
    body = html.escape(window)
    if terms:
        pattern = re.compile(r"\b(" + "|".join(re.escape(html.escape(t)) for t in terms) + r")\w*", re.IGNORECASE)
        body = pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", body)
    return ("…" if begin else "") + body + ("…" if begin + width < len(text) else "")
