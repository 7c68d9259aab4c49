"""Rooms, projects, sessions and the chat contract's session endpoints over HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat import services
from chat.models import ChatSession, Message, Room
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_room_crud(api, user, team):
    created = api.post(
        "/api/v1/rooms/",
        {"name": "Plans", "metadata": {"color": "blue"}, "tags": ["Work"], "model": "smollm2", "pinned": True},
        format="json",
    )
    assert created.status_code == 201, created.content
    room = created.json()
    assert room["team"] == team.pk and room["tags"] == ["work"] and room["pinned"] is True
    assert room["owner"] == "owner" and room["message_count"] == 0
    got = api.get(f"/api/v1/rooms/{room['id']}").json()
    assert got["metadata"] == {"color": "blue"}
    updated = api.patch(
        f"/api/v1/rooms/{room['id']}",
        {"name": "Plans 2", "archived": True, "system_prompt": "Be brief.", "tags": ["a", "b"]},
        format="json",
    )
    assert updated.status_code == 200
    assert updated.json()["name"] == "Plans 2" and updated.json()["tags"] == ["a", "b"]
    assert updated.json()["system_prompt"] == "Be brief."
    assert api.delete(f"/api/v1/rooms/{room['id']}").status_code == 204
    assert api.get(f"/api/v1/rooms/{room['id']}").status_code == 404
    assert Room.objects.get(pk=room["id"]).is_deleted  # soft


def test_room_list_filters_and_sorting(api, user):
    project = ProjectFactory(owner=user)
    a = services.create_room(owner=user, name="Alpha", tags=["x"], project=project)
    b = services.create_room(owner=user, name="Beta")
    c = services.create_room(owner=user, name="Gamma")
    services.update_room(room=c, changes={"archived": True})
    services.update_room(room=b, changes={"pinned": True})
    services.append_message(room=a, role="user", content="talk about zebras")

    def names(**params):
        response = api.get("/api/v1/rooms/", params)
        assert response.status_code == 200, response.content
        return [r["name"] for r in response.json()["results"]]

    assert names() == ["Alpha", "Beta"]  # most recent activity first, archived hidden
    assert names(sort="name") == ["Alpha", "Beta"]
    assert names(sort="-name", archived="all") == ["Gamma", "Beta", "Alpha"]
    assert names(archived="true") == ["Gamma"]
    assert names(pinned="true") == ["Beta"]
    assert names(tag="X") == ["Alpha"]
    assert names(project=str(project.pk)) == ["Alpha"]
    assert names(project="none") == ["Beta"]
    assert names(q="zebra") == ["Alpha"]
    page = api.get("/api/v1/rooms/", {"limit": 1, "offset": 1}).json()
    assert page["count"] == 2 and len(page["results"]) == 1
    bad = api.get("/api/v1/rooms/", {"sort": "owner"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_sort"


def test_limits_give_clear_errors(api, settings):
    long_name = api.post("/api/v1/rooms/", {"name": "n" * 101}, format="json")
    assert long_name.status_code == 400
    assert long_name.json()["error"]["message"] == "name: Room name is 101 characters; the limit is 100."
    big = api.post("/api/v1/rooms/", {"metadata": {"k": "v" * 11_000}}, format="json")
    assert big.status_code == 400 and "limit is 10240" in big.json()["error"]["message"]
    settings.ROOMS_PER_USER = 1
    assert api.post("/api/v1/rooms/", {}, format="json").status_code == 201
    full = api.post("/api/v1/rooms/", {}, format="json")
    assert full.status_code == 409
    assert full.json()["error"] == {
        "code": "room_limit_reached",
        "message": "You have 1 active rooms; the limit is 1. Archive or delete some rooms first.",
        "details": {"limit": 1},
    }


@pytest.mark.parametrize("generation", ["hot", {"temperature": "hot"}, {"max_tokens": -5}, {"top_p": 1.5},
                                        {"temperture": 0.2}])
def test_stored_generation_parameters_get_the_checks_a_reply_request_gets(api, user, generation):
    room = services.create_room(owner=user, name="Keep me", metadata={"generation": {"temperature": 0.3}})
    response = api.patch(f"/api/v1/rooms/{room.pk}", {"metadata": {"generation": generation}}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"].startswith("metadata")
    room.refresh_from_db()
    assert room.metadata == {"generation": {"temperature": 0.3}}
    created = api.post("/api/v1/rooms/", {"metadata": {"generation": generation}}, format="json")
    assert created.status_code == 400


def test_stored_generation_parameters_may_be_left_empty(api, user):
    room = services.create_room(owner=user)
    body = {"metadata": {"generation": {"temperature": 0.2, "max_tokens": None}, "color": "blue"}}
    response = api.patch(f"/api/v1/rooms/{room.pk}", body, format="json")
    assert response.status_code == 200 and response.json()["metadata"] == body["metadata"]


def test_bad_input_never_500s(api, user):
    room = services.create_room(owner=user, name="Keep me")
    for body in ({"tags": "notalist"}, {"pinned": "maybe"}, {"project": "nope"}, {"metadata": "[1,"}):
        response = api.patch(f"/api/v1/rooms/{room.pk}", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert set(response.json()["error"]) == {"code", "message", "details"}
    malformed = api.generic("POST", "/api/v1/rooms/", "{not json", content_type="application/json")
    assert malformed.status_code == 400
    room.refresh_from_db()
    assert room.name == "Keep me"
    foreign_project = ProjectFactory()
    response = api.patch(f"/api/v1/rooms/{room.pk}", {"project": str(foreign_project.pk)}, format="json")
    assert response.status_code == 400


def test_history_branch_and_tree(api, user):
    room = services.create_room(owner=user)
    question = services.append_message(room=room, role="user", content="Q", author=user)
    first = services.append_message(room=room, role="assistant", content="A1")
    second = services.append_message(room=room, role="assistant", content="A2", parent=question)
    branch = api.get(f"/api/v1/rooms/{room.pk}/history").json()
    assert [m["content"] for m in branch["results"]] == ["Q", "A2"]
    assert branch["results"][1]["sibling_ids"] == [str(first.pk), str(second.pk)]
    assert branch["results"][0]["author"] == "owner"
    tree = api.get(f"/api/v1/rooms/{room.pk}/history", {"view": "tree"}).json()
    assert [m["content"] for m in tree["results"]] == ["Q", "A1", "A2"]
    assert tree["results"][1]["parent"] == str(question.pk)
    paged = api.get(f"/api/v1/rooms/{room.pk}/history", {"limit": 1, "offset": 1}).json()
    assert paged["count"] == 2 and [m["content"] for m in paged["results"]] == ["A2"]
    assert api.get(f"/api/v1/rooms/{room.pk}/history", {"view": "sideways"}).status_code == 400


def test_clear_messages_fresh_title_cleanup(api, user):
    room = services.create_room(owner=user)
    services.append_message(room=room, role="user", content="please plan a trip to Lisbon in May. Budget 900")
    services.append_message(room=room, role="assistant", content="Sure")
    titled = api.post(f"/api/v1/rooms/{room.pk}/title").json()
    assert titled["name"] == "Please plan a trip to Lisbon in May"
    assert api.post(f"/api/v1/rooms/{room.pk}/messages/clear").json() == {"count": 2}
    assert api.post(f"/api/v1/rooms/{room.pk}/title").status_code == 409
    fresh = api.post("/api/v1/rooms/fresh", {}, format="json")
    assert fresh.status_code == 200 and fresh.json()["id"] == str(room.pk)  # the cleared room is empty again
    services.append_message(room=room, role="user", content="busy again")
    created = api.post("/api/v1/rooms/fresh", {"model": "tiny"}, format="json")
    assert created.status_code == 201 and created.json()["model"] == "tiny"
    services.create_room(owner=user, name="spare")
    assert api.post("/api/v1/rooms/cleanup-empty").json() == {"count": 1}
    assert api.post("/api/v1/rooms/cleanup-empty?older_than_minutes=x").status_code == 400


def test_export_import_round_trip(api, user):
    room = services.create_room(owner=user, name="Trip", tags=["travel"], metadata={"k": 1}, system_prompt="Be nice")
    question = services.append_message(room=room, role="user", content="Where to go?", author=user)
    old = services.append_message(room=room, role="assistant", content="Paris", model="m1")
    services.append_message(room=room, role="assistant", content="Lisbon", model="m2", parent=question)
    Message.objects.filter(pk=old.pk).update(rating=-1, completion_tokens=3, time_to_first_token_ms=12.5)
    exported = api.get(f"/api/v1/rooms/{room.pk}/export").json()
    assert exported["format"] == "llm-chat-room" and len(exported["messages"]) == 3
    imported = api.post("/api/v1/rooms/import", exported, format="json")
    assert imported.status_code == 201, imported.content
    new_id = imported.json()["id"]
    assert new_id != str(room.pk) and imported.json()["name"] == "Trip"
    again = api.get(f"/api/v1/rooms/{new_id}/export").json()

    def strip(doc):
        ids = {m["id"]: i for i, m in enumerate(doc["messages"])}
        return {
            "room": {k: v for k, v in doc["room"].items() if k != "created_at"},
            "leaf": ids[doc["active_leaf_id"]],
            "messages": [
                {**{k: v for k, v in m.items() if k not in ("id", "parent_id")},
                 "parent": ids.get(m["parent_id"])}
                for m in doc["messages"]
            ],
        }

    assert strip(again) == strip(exported)
    history = api.get(f"/api/v1/rooms/{new_id}/history").json()
    assert [m["content"] for m in history["results"]] == ["Where to go?", "Lisbon"]


def test_markdown_export(api, user):
    room = services.create_room(owner=user, name="Notes")
    services.append_message(room=room, role="user", content="Hello **there**")
    services.append_message(room=room, role="assistant", content="Hi!", model="smol")
    response = api.get(f"/api/v1/rooms/{room.pk}/export", {"format": "markdown"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    text = response.content.decode()
    assert text.startswith("# Notes\n")
    assert "## User\n\nHello **there**" in text and "## Assistant (smol)\n\nHi!" in text


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d["messages"][0].update(role="wizard"), "role"),
        (lambda d: d["messages"][0].update(parent_id="missing"), "parent"),
        (lambda d: d["messages"][0].update(content="x" * 32_001), "limit is 32000"),
        (lambda d: d.update(active_leaf_id="nope"), "active_leaf_id"),
        (lambda d: d["room"].update(name="n" * 101), "Room name"),
    ],
)
def test_import_rejects_bad_documents(api, user, mutate, fragment):
    room = services.create_room(owner=user)
    services.append_message(room=room, role="user", content="hi")
    document = api.get(f"/api/v1/rooms/{room.pk}/export").json()
    mutate(document)
    before = Room.objects.count()
    response = api.post("/api/v1/rooms/import", document, format="json")
    assert response.status_code == 400, response.content
    assert fragment in str(response.json()["error"])
    assert Room.objects.count() == before  # nothing half-imported


def test_projects(api, user):
    created = api.post("/api/v1/projects/", {"name": "Thesis"}, format="json")
    assert created.status_code == 201
    pid = created.json()["id"]
    room = api.post("/api/v1/rooms/", {"project": pid}, format="json").json()
    listing = api.get("/api/v1/projects/").json()["results"]
    assert listing[0]["room_count"] == 1
    services.append_message(room=Room.objects.get(pk=room["id"]), role="user", content="hi")
    assert api.get("/api/v1/projects/").json()["results"][0]["last_chat_at"] is not None
    assert api.patch(f"/api/v1/projects/{pid}", {"name": "PhD"}, format="json").json()["name"] == "PhD"
    assert api.post("/api/v1/projects/", {"name": "p" * 101}, format="json").status_code == 400
    assert api.delete(f"/api/v1/projects/{pid}").status_code == 204
    assert api.get(f"/api/v1/rooms/{room['id']}").json()["project"] is None


def test_sessions(api, user, settings):
    room = services.create_room(owner=user)
    services.append_message(room=room, role="user", content="hi")
    created = api.post("/api/v1/session/", {"room_id": str(room.pk)}, format="json")
    assert created.status_code == 201
    sid = created.json()["id"]
    assert api.get(f"/api/v1/session/{sid}").json()["room_id"] == str(room.pk)
    reset = api.post(f"/api/v1/session/{sid}/reset", {}, format="json")
    assert reset.status_code == 200 and reset.json()["agent_state"] == {}
    assert api.post(f"/api/v1/session/{sid}/stop").json() == {"stopped": 0}
    assert api.post(f"/api/v1/session/{sid}/clear").json() == {"count": 1}
    ChatSession.objects.filter(pk=sid).update(last_seen_at=timezone.now() - timedelta(minutes=11))
    expired = api.get(f"/api/v1/session/{sid}")
    assert expired.status_code == 404 and expired.json()["error"]["code"] == "session_expired"
    second = api.post("/api/v1/session/", {"room_id": str(room.pk)}, format="json").json()["id"]
    assert api.delete(f"/api/v1/session/{second}").status_code == 204
    assert api.get(f"/api/v1/session/{second}").status_code == 404
    assert api.post("/api/v1/session/", {"room_id": "nope"}, format="json").status_code == 400


def test_session_stop_flags_running_stream(api, user):
    from chat.models import Stream

    room = services.create_room(owner=user)
    reply = services.append_message(room=room, role="assistant", content="", status="streaming")
    Stream.objects.create(room=room, message=reply, user=user)
    sid = api.post("/api/v1/session/", {"room_id": str(room.pk)}, format="json").json()["id"]
    assert api.post(f"/api/v1/session/{sid}/stop").json() == {"stopped": 1}


def test_chat_contract_sessions(api, user):
    created = api.post("/api/v1/chat/sessions", {"title": "Hello", "model": "smollm2"}, format="json")
    assert created.status_code == 201
    chat_id = created.json()["id"]
    assert created.json()["title"] == "Hello" and created.json()["model"] == "smollm2"
    assert [s["id"] for s in api.get("/api/v1/chat/sessions").json()["results"]] == [chat_id]
    assert api.get(f"/api/v1/chat/sessions/{chat_id}").json()["name"] == "Hello"
    assert api.delete(f"/api/v1/chat/sessions/{chat_id}").status_code == 204
    assert api.get(f"/api/v1/chat/sessions/{chat_id}").status_code == 404


def test_rating_and_branch_switching(api, user):
    room = services.create_room(owner=user)
    question = services.append_message(room=room, role="user", content="Q", author=user)
    first = services.append_message(room=room, role="assistant", content="A1")
    second = services.append_message(room=room, role="assistant", content="A2", parent=question)
    rated = api.post(f"/api/v1/rooms/{room.pk}/messages/{first.pk}/rating", {"rating": -1}, format="json")
    assert rated.status_code == 200 and rated.json()["rating"] == -1
    assert api.post(f"/api/v1/rooms/{room.pk}/messages/{first.pk}/rating", {"rating": 0}).json()["rating"] is None
    assert api.post(f"/api/v1/rooms/{room.pk}/messages/{question.pk}/rating", {"rating": 1}).status_code == 400
    assert api.post(f"/api/v1/rooms/{room.pk}/messages/{first.pk}/rating", {"rating": 5}).status_code == 400
    switched = api.post(f"/api/v1/rooms/{room.pk}/branch", {"message_id": str(first.pk)}, format="json")
    assert switched.status_code == 200 and switched.json()["active_leaf"] == str(first.pk)
    history = api.get(f"/api/v1/rooms/{room.pk}/history").json()["results"]
    assert [m["content"] for m in history] == ["Q", "A1"]
    assert history[1]["sibling_ids"] == [str(first.pk), str(second.pk)]
    other = services.create_room(owner=user)
    assert api.post(f"/api/v1/rooms/{other.pk}/branch", {"message_id": str(first.pk)}).status_code == 404


def test_models_list_is_public(fake_ollama, anon_client):
    response = anon_client.get("/api/v1/chat/models")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [m["name"] for m in rows] == ["fake-llm:latest", "fake-coder:7b"]
    assert rows[0]["default"] is True and rows[0]["size"] == 1_000_000
