"""Hybrid search through the API: real FTS (SQLite FTS5 or PostgreSQL), real MiniLM vectors, scope in SQL."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import Role
from chat import services
from chat.models import MessageRole
from chat.selectors import readable_room_parts, rooms_readable_by
from search.models import Document
from search.vectors import vector_cache
from tests.conftest import client_for
from tests.factories import MembershipFactory, ProjectFactory, RoomFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

JS_CHAT = [
    "How do I write a JavaScript function that debounces another function?",
    "Use setTimeout inside a closure: function debounce(fn, ms) { let t; return (...a) => { clearTimeout(t); "
    "t = setTimeout(() => fn(...a), ms); }; }",
    "And how do arrow functions differ from regular functions in JavaScript?",
]
COOKING_CHAT = [
    "What is a good recipe for sourdough bread?",
    "Mix flour, water, salt and an active starter, then let the dough rise overnight before baking.",
]
GARDEN_CHAT = ["When should I plant tomatoes in my vegetable garden?", "After the last frost, in full sun."]


def _room(owner, texts, **fields):
    room = RoomFactory(owner=owner, **fields)
    for i, text in enumerate(texts):
        services.append_message(room=room, role=MessageRole.USER if i % 2 == 0 else MessageRole.ASSISTANT,
                                content=text, author=owner if i % 2 == 0 else None)
    return room


@pytest.fixture
def corpus(roles, index_all):
    owner = roles["owner"]
    rooms = {
        "js": _room(owner, JS_CHAT, name="Frontend help"),
        "cooking": _room(owner, COOKING_CHAT, name="Baking"),
        "garden": _room(owner, GARDEN_CHAT, name="Garden"),
        "other_js": _room(roles["other_user"], ["My secret JavaScript function for payroll"], name="Other's"),
        "outsider_js": _room(roles["other_team"], ["Outsider JavaScript function notes"], name="Outsider"),
    }
    index_all()
    return rooms


def search(user, **params):
    response = client_for(user).get("/api/v1/chat/search", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_javascript_function_finds_the_javascript_chat_first(corpus, roles):
    body = search(roles["owner"], q="JavaScript function")
    assert body["count"] >= 1
    top = body["results"][0]
    assert top["room"] == {"id": str(corpus["js"].pk), "name": "Frontend help", "owner": roles["owner"].username}
    assert top["kind"] == "message"
    assert "<mark>" in top["snippet"]
    assert top["link"] == f"/chat/{corpus['js'].pk}/?message={top['message_id']}#message-{top['message_id']}"
    assert {hit["room"]["id"] for hit in body["results"][:3]} == {str(corpus["js"].pk)}


def test_meaning_without_shared_words(corpus, roles):
    """No message says "baking" or "loaf" words like these; the vectors still find the bread chat."""
    body = search(roles["owner"], q="how to make a loaf at home", mode="vector")
    assert body["results"][0]["room"]["id"] == str(corpus["cooking"].pk)
    assert body["results"][0]["fulltext_rank"] is None
    assert body["results"][0]["similarity"] > 0.3


def test_fulltext_alone_stems_and_marks(corpus, roles):
    body = search(roles["owner"], q="planting", mode="fulltext")
    assert [hit["room"]["id"] for hit in body["results"]] == [str(corpus["garden"].pk)]
    assert "<mark>plant</mark>" in body["results"][0]["snippet"]
    assert body["results"][0]["similarity"] is None


def test_another_users_hits_are_never_returned(corpus, roles):
    for user in (roles["owner"], roles["team_admin"], roles["other_team"]):
        rooms = {hit["room"]["id"] for hit in search(user, q="JavaScript function payroll secret")["results"]}
        assert str(corpus["other_js"].pk) not in rooms or user == roles["other_user"]
        if user != roles["other_team"]:
            assert str(corpus["outsider_js"].pk) not in rooms
    admin_rooms = {hit["room"]["id"] for hit in search(roles["team_admin"], q="JavaScript")["results"]}
    assert admin_rooms == set()  # an admin has no founder rights
    own = {hit["room"]["id"] for hit in search(roles["other_user"], q="JavaScript")["results"]}
    assert own == {str(corpus["other_js"].pk)}


def test_a_founder_searches_the_teams_rooms(corpus, roles):
    hits = search(roles["founder"], q="JavaScript function", limit=50)["results"]
    rooms = {hit["room"]["id"] for hit in hits}
    assert {str(corpus["js"].pk), str(corpus["other_js"].pk)} <= rooms
    assert str(corpus["outsider_js"].pk) not in rooms
    owners = {hit["room"]["id"]: hit["room"]["owner"] for hit in hits}  # whose each room is, for the founder
    assert owners[str(corpus["js"].pk)] == roles["owner"].username


def test_filters(corpus, roles):
    owner = roles["owner"]
    only_cooking = search(owner, q="function bread tomatoes", room=str(corpus["cooking"].pk))["results"]
    assert {hit["room"]["id"] for hit in only_cooking} == {str(corpus["cooking"].pk)}
    replies = search(owner, q="JavaScript function", role="assistant")["results"]
    assert replies and all(hit["role"] == "assistant" for hit in replies)
    assert search(owner, q="JavaScript", date_to="2000-01-01")["count"] == 0
    assert search(owner, q="JavaScript", date_from="2000-01-01")["count"] > 0
    project = ProjectFactory(owner=owner)
    services.update_room(room=corpus["garden"], changes={"project": project})
    in_project = search(owner, q="JavaScript tomatoes bread", project=str(project.pk))["results"]
    assert {hit["room"]["id"] for hit in in_project} == {str(corpus["garden"].pk)}


def test_deleted_text_is_never_found(corpus, roles):
    owner = roles["owner"]
    room = corpus["js"]
    message = room.messages.get(content=JS_CHAT[0])
    services.delete_message(room=room, message=message)
    ids = {hit["message_id"] for hit in search(owner, q="debounces", limit=50)["results"]}
    assert str(message.pk) not in ids
    assert not Document.objects.filter(message=message).exists()
    services.soft_delete_room(room=room)
    assert not {hit["room"]["id"] for hit in search(owner, q="JavaScript", limit=50)["results"]} & {str(room.pk)}
    assert not Document.objects.filter(room=room).exists()
    services.clear_room_messages(room=corpus["garden"])
    assert search(owner, q="tomatoes", mode="fulltext")["count"] == 0


def test_account_deletion_and_wipe_leave_no_index_rows(corpus, roles):
    roles["other_user"].delete()
    assert not Document.objects.filter(room=corpus["other_js"]).exists()
    services.wipe_chat_data()
    assert Document.objects.count() == 0
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM search_document_fts WHERE search_document_fts MATCH 'javascript'")
            assert cursor.fetchone()[0] == 0


@pytest.mark.parametrize("params, field", [
    ({}, "q"), ({"q": "   "}, "q"), ({"q": "x", "limit": "0"}, "limit"), ({"q": "x", "date_from": "yesterday"},
                                                                           "date_from"),
    ({"q": "x", "role": "robot"}, "role"), ({"q": "x", "room": "not-a-uuid"}, "room"),
    ({"q": "x", "mode": "magic"}, "mode"), ({"q": "x", "date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_to"),
])
def test_bad_input_is_a_400(api, params, field):
    response = api.get("/api/v1/chat/search", params)
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_query_syntax_is_never_passed_to_the_database(corpus, roles):
    for query in ('"unbalanced', "AND OR NOT", "col:value*", "a' OR 1=1 --", "NEAR(x y)", "((("):
        response = client_for(roles["owner"]).get("/api/v1/chat/search", {"q": query})
        assert response.status_code == 200, (query, response.content)


def test_search_needs_a_login(anon_client):
    assert anon_client.get("/api/v1/chat/search", {"q": "x"}).status_code == 401


def test_ane_search_answers_whole_chunks_with_scores(corpus, roles):
    response = client_for(roles["owner"]).get("/api/v1/chat/ane/search", {"q": "debounce in JavaScript", "limit": 3})
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["text"] in JS_CHAT
    assert results[0]["score"] > 0 and results[0]["similarity"] > 0


def test_ane_stats(corpus, roles):
    stats = client_for(roles["owner"]).get("/api/v1/chat/ane/stats").json()
    assert stats["documents"] == stats["vectors"] == 7
    assert stats["messages"] == 7 and stats["chunks"] == 0 and stats["pending"] == 0
    assert stats["dimension"] == 384 and stats["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert stats["size_on_disk_bytes"] > 7 * (384 + 4)  # int8 codes and a scale per vector, plus the text
    assert stats["last_indexed"] is not None
    founder = client_for(roles["founder"]).get("/api/v1/chat/ane/stats").json()
    assert founder["documents"] == 8  # the team's rooms: the owner's seven and the other member's one


def test_founder_of_another_team_sees_nothing_here(db):
    team = TeamFactory()
    founder = UserFactory()
    MembershipFactory(team=team, user=founder, role=Role.FOUNDER)
    assert search(founder, q="JavaScript")["count"] == 0


def test_common_words_do_not_match_on_their_own(corpus, roles):
    """"the" or "to" in a query finds nothing by itself; a query of only such words still searches them."""
    api = client_for(roles["owner"])
    hits = api.get("/api/v1/chat/search", {"q": "the to of javascript", "mode": "fulltext"}).json()["results"]
    assert hits and all("javascript" in hit["snippet"].lower() for hit in hits)
    assert api.get("/api/v1/chat/search", {"q": "the", "mode": "fulltext"}).status_code == 200


def test_cached_vectors_never_outlive_their_rows(corpus, roles):
    """Vectors stay in process memory between searches; deleted rows and re-embedded ones are never stale."""
    owner, room = roles["owner"], corpus["js"]
    message = room.messages.get(content=JS_CHAT[0])
    assert str(message.pk) in {hit["message_id"] for hit in search(owner, q="debounce", mode="vector")["results"]}
    services.delete_message(room=room, message=message)
    for mode in ("vector", "hybrid"):
        assert str(message.pk) not in {hit["message_id"] for hit in search(owner, q="debounce", mode=mode)["results"]}
    # A row whose stored vector changes under the same id (re-embedded) is ranked by its new vector.
    bread = Document.objects.get(message__content=COOKING_CHAT[0])
    garden = Document.objects.get(message__content=GARDEN_CHAT[0])
    assert search(owner, q="sourdough loaf", mode="vector")["results"][0]["message_id"] == str(bread.message_id)
    Document.objects.filter(pk=garden.pk).update(vector=bread.vector, vector_key=bread.vector_key)
    Document.objects.filter(pk=bread.pk).update(vector=garden.vector, vector_key=garden.vector_key)
    top = search(owner, q="sourdough loaf", mode="vector")["results"]
    assert top[0]["message_id"] == str(garden.message_id)


def test_cached_vectors_of_other_readers_stay_out_of_scope(corpus, roles):
    search(roles["founder"], q="JavaScript function", mode="vector")  # the cache now holds the team's rows
    search(roles["other_team"], q="JavaScript function", mode="vector")
    rooms = {hit["room"]["id"] for hit in search(roles["owner"], q="JavaScript function", limit=50)["results"]}
    assert rooms and rooms <= {str(corpus[name].pk) for name in ("js", "cooking", "garden")}


def test_hybrid_counts_full_text_only_for_rows_holding_every_word(corpus, roles):
    owner = roles["owner"]
    query = "how to write a loaf of bread recipe"
    js = str(corpus["js"].messages.get(content=JS_CHAT[0]).pk)
    assert js in {hit["message_id"] for hit in search(owner, q=query, mode="fulltext")["results"]}  # "write"
    hits = search(owner, q=query)["results"]
    assert hits[0]["message_id"] == str(corpus["cooking"].messages.get(content=COOKING_CHAT[0]).pk)
    assert all(hit["fulltext_rank"] is None for hit in hits)  # no row holds every word: meaning decides
    both = search(owner, q="sourdough bread")["results"][0]  # every word, and the meaning too
    assert both["fulltext_rank"] == 1 and both["vector_rank"] is not None


def test_readable_room_parts_are_exactly_the_readable_rooms(corpus, roles):
    for user in roles.values():
        own, teams = readable_room_parts(user)
        assert set(own.values_list("pk", flat=True)) | set(teams.values_list("pk", flat=True)) == set(
            rooms_readable_by(user).values_list("pk", flat=True))


def test_a_full_vector_cache_starts_over_and_still_ranks_everything(corpus, roles, settings, index_all):
    owner = roles["owner"]
    settings.SEARCH_VECTOR_CACHE_ROWS = 3  # fewer than the owner's rows: every new row overflows it
    settings.SEARCH_MIN_SIMILARITY = -1.0  # every row is a vector hit, so the count shows what was ranked
    vector_cache.clear()
    assert search(owner, q="JavaScript", mode="vector", limit=50)["count"] == 7
    _room(owner, ["A new question about JavaScript closures"])
    index_all()  # one row the cache lacks: reading it overflows the cache, which keeps what this search needs
    assert search(owner, q="JavaScript", mode="vector", limit=50)["count"] == 8
