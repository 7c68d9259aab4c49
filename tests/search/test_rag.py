"""Replies use the room's files: upload → extract → chunk → embed → retrieve → cited reply, end to end."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.services import create_api_token
from chat import services
from chat.models import Message, MessageStatus
from search.services import upload_attachment
from tests.chat.test_sse import BearerClient, parse_sse, read
from tests.chat.wsutil import connect, frames_until, is_end
from tests.factories import RoomFactory, UserFactory
from tests.search.pdfs import pdf_with_pages

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

GUIDE = ("# Falcon deployment runbook\n\nThe Falcon staging cluster listens on port 8443.\n"
         "Database backups run nightly at 02:30 UTC and are kept for 35 days.\n")


async def _room_with_file(name: str, data: bytes):
    user = await database_sync_to_async(UserFactory)()
    room = await database_sync_to_async(RoomFactory)(owner=user)
    await database_sync_to_async(upload_attachment)(user=user, room=room, uploaded=SimpleUploadedFile(name, data))
    return user, room


async def _ask(user, room, question: str, **options) -> tuple[list[dict], Message]:
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": question,
                           "options": {"max_tokens": 16, "temperature": 0.1, **options}})
    frames = await frames_until(ws, is_end, timeout=120)
    await ws.disconnect()
    reply = await database_sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    return frames, reply


async def test_relevant_passages_go_into_the_prompt_with_numbered_sources(fake_ollama):
    user, room = await _room_with_file("runbook.md", GUIDE.encode())
    _frames, reply = await _ask(user, room, "Which port does the Falcon staging cluster listen on?")
    system = fake_ollama.stats.last_request["messages"][0]
    assert system["role"] == "system"
    assert "[1] runbook.md (lines 1-4):" in system["content"] and "port 8443" in system["content"]
    citations = reply.metadata["citations"]
    assert citations[0]["file_name"] == "runbook.md" and citations[0]["n"] == 1
    assert citations[0]["line_start"] == 1 and citations[0]["score"] >= 0.3
    assert reply.status == MessageStatus.COMPLETE


async def test_nothing_is_injected_without_a_relevant_passage(fake_ollama):
    user, room = await _room_with_file("runbook.md", GUIDE.encode())
    _frames, reply = await _ask(user, room, "Write a haiku about autumn leaves.")
    roles = [turn["role"] for turn in fake_ollama.stats.last_request["messages"]]
    assert "system" not in roles
    assert "citations" not in reply.metadata


async def test_a_pdf_page_is_cited_by_page(fake_ollama):
    user, room = await _room_with_file("report.pdf", pdf_with_pages(
        ["Introduction to the annual report.", "Revenue in the Nordic region grew by 14 percent this year."]))
    _frames, reply = await _ask(user, room, "How much did Nordic revenue grow?")
    assert any(c["page"] == 2 for c in reply.metadata["citations"])
    assert "(page 2)" in fake_ollama.stats.last_request["messages"][0]["content"]


@pytest.mark.slow
async def test_cited_reply_with_the_bundled_model(settings):
    settings.LOCAL_MODELS_ENABLED = True
    settings.OLLAMA_URLS = []
    settings.OPENAI_BASE_URL = ""
    settings.DEFAULT_MODEL = ""
    user, room = await _room_with_file("runbook.md", GUIDE.encode())
    frames, reply = await _ask(user, room, "How long are Falcon database backups kept?")
    assert frames[-1]["status"] == "complete" and reply.content.strip()
    assert reply.metadata["citations"][0]["file_name"] == "runbook.md"
    _frames, plain = await _ask(user, await database_sync_to_async(RoomFactory)(owner=user),
                                "How long are Falcon database backups kept?")
    assert reply.prompt_tokens > plain.prompt_tokens + 30  # the passage really was in the prompt


# --- files on send_message -----------------------------------------------------------------------------

NOTES = ("Garden notes\n\nThe tomato seedlings go into the raised bed in mid May.\n"
         "Water the basil every second day and keep it out of the afternoon sun.\n")


async def _upload(user, room, name: str, data: bytes):
    return await database_sync_to_async(upload_attachment)(user=user, room=room,
                                                           uploaded=SimpleUploadedFile(name, data))


async def _send(user, room, question: str, **frame) -> tuple[list[dict], Message]:
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": question, "options": {"max_tokens": 8}, **frame})
    frames = await frames_until(ws, is_end, timeout=120)
    await ws.disconnect()
    return frames, await database_sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])


async def _error_for(user, room, frame: dict) -> dict:
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "Summarise this file.", **frame})
    error = (await frames_until(ws, lambda f: f["type"] == "error"))[-1]
    await ws.disconnect()
    return error


async def test_an_attached_file_is_cited_even_when_the_question_does_not_resemble_it(fake_ollama):
    user, room = await _room_with_file("runbook.md", GUIDE.encode())
    notes = await _upload(user, room, "garden.md", NOTES.encode())
    _frames, plain = await _send(user, room, "Summarise this file.")
    assert "citations" not in plain.metadata  # by similarity alone neither file is evidence
    _frames, reply = await _send(user, room, "Summarise this file.", files=[str(notes.pk)])
    system = fake_ollama.stats.last_request["messages"][0]
    assert system["role"] == "system" and "raised bed in mid May" in system["content"]
    assert "Falcon" not in system["content"]
    assert [c["file_id"] for c in reply.metadata["citations"]] == [str(notes.pk)]
    question = await database_sync_to_async(Message.objects.get)(pk=reply.parent_id)
    assert question.metadata["files"] == [{"id": str(notes.pk), "name": "garden.md"}]


async def test_a_regenerated_reply_draws_on_the_same_attached_file(fake_ollama):
    user, room = await _room_with_file("garden.md", NOTES.encode())
    notes = await database_sync_to_async(lambda: room.attachments.get())()
    _frames, first = await _send(user, room, "Summarise this file.", files=[str(notes.pk)])
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "regenerate", "message_id": str(first.pk)})
    frames = await frames_until(ws, is_end, timeout=60)
    await ws.disconnect()
    again = await database_sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    assert again.pk != first.pk and again.metadata["citations"][0]["file_id"] == str(notes.pk)


async def test_files_of_another_room_or_user_are_refused_and_nothing_is_written(fake_ollama):
    user, room = await _room_with_file("runbook.md", GUIDE.encode())
    _other_user, other_room = await _room_with_file("garden.md", NOTES.encode())
    foreign = await database_sync_to_async(lambda: other_room.attachments.get())()
    own_elsewhere_room = await database_sync_to_async(RoomFactory)(owner=user)
    own_elsewhere = await _upload(user, own_elsewhere_room, "garden.md", NOTES.encode())
    for file_id in (foreign.pk, own_elsewhere.pk):
        error = await _error_for(user, room, {"files": [str(file_id)]})
        assert error["code"] == "file_not_found"
    assert not await database_sync_to_async(Message.objects.filter(room=room).exists)()
    assert not fake_ollama.stats.last_request


@pytest.mark.parametrize("files", ["not-a-list", [1], ["not-a-uuid"], [None], {"id": "x"}, None,
                                   [f"00000000-0000-0000-0000-{n:012d}" for n in range(21)]])
async def test_malformed_files_get_an_error_frame(fake_ollama, files):
    user, room = await _room_with_file("runbook.md", GUIDE.encode())
    error = await _error_for(user, room, {"files": files})
    assert error["code"] == "validation_error" and error["message"].startswith("files")


async def test_search_all_rooms_must_be_a_boolean(fake_ollama):
    user, room = await _room_with_file("runbook.md", GUIDE.encode())
    error = await _error_for(user, room, {"search_all_rooms": "yes"})
    assert error["code"] == "validation_error" and error["message"].startswith("search_all_rooms")


# --- retrieval across rooms ----------------------------------------------------------------------------

async def _asked(user, room, question: str, **frame) -> Message:
    return (await _send(user, room, question, **frame))[1]


def _said(user, room, text: str) -> Message:
    return Message.objects.create(room=room, author=user, role="user", content=text)


async def test_asking_for_all_rooms_cites_the_users_other_rooms_and_nobody_elses(fake_ollama, index_all):
    user, stranger = await database_sync_to_async(UserFactory)(), await database_sync_to_async(UserFactory)()
    trip, stranger_room, here = [await database_sync_to_async(RoomFactory)(owner=owner, name=name)
                                 for owner, name in ((user, "Trip"), (stranger, "Theirs"), (user, "Here"))]
    mine = await database_sync_to_async(_said)(user, trip, "Our ferry to the island of Hvar leaves Split at 7:15.")
    await database_sync_to_async(_said)(stranger, stranger_room,
                                        "The ferry from Split to Hvar leaves at 7:15 every morning.")
    await _upload(stranger, stranger_room, "ferries.md", b"Split to Hvar ferry departures: 7:15 and 11:00.\n")
    await database_sync_to_async(index_all)()
    question = "When does the ferry from Split to Hvar leave?"
    plain = await _asked(user, here, question)
    assert "citations" not in plain.metadata
    assert "system" not in [t["role"] for t in fake_ollama.stats.last_request["messages"]]
    reply = await _asked(user, here, question, search_all_rooms=True)
    citations = reply.metadata["citations"]
    assert [(c["kind"], c["message_id"], c["room_name"]) for c in citations] == [("message", str(mine.pk), "Trip")]
    assert citations[0]["link"] == f"/chat/{trip.pk}/?message={mine.pk}#message-{mine.pk}"
    system = fake_ollama.stats.last_request["messages"][0]["content"]
    assert "from the user's other chats" in system and '[1] the chat "Trip", user message of' in system
    assert "every morning" not in system and "11:00" not in system


async def test_other_rooms_deleted_messages_are_never_drawn_on(fake_ollama, index_all):
    user = await database_sync_to_async(UserFactory)()
    trip = await database_sync_to_async(RoomFactory)(owner=user, name="Trip")
    here = await database_sync_to_async(RoomFactory)(owner=user)
    said = await database_sync_to_async(_said)(user, trip, "Our ferry to the island of Hvar leaves Split at 7:15.")
    await database_sync_to_async(index_all)()
    await database_sync_to_async(services.delete_message)(room=trip, message=said)
    reply = await _asked(user, here, "When does the ferry from Split to Hvar leave?", search_all_rooms=True)
    assert "citations" not in reply.metadata


async def test_a_room_file_and_another_rooms_message_are_cited_together(fake_ollama, index_all):
    user, room = await _room_with_file("runbook.md", GUIDE.encode())
    ops = await database_sync_to_async(RoomFactory)(owner=user, name="Ops")
    await database_sync_to_async(_said)(user, ops, "Falcon staging moved from port 8443 to port 9443 on Monday.")
    await database_sync_to_async(index_all)()
    reply = await _asked(user, room, "Which port does the Falcon staging cluster listen on?", search_all_rooms=True)
    kinds = {(c["kind"], c.get("room_name")) for c in reply.metadata["citations"]}
    assert kinds == {("chunk", None), ("message", "Ops")}
    assert [c["n"] for c in reply.metadata["citations"]] == [1, 2]


@pytest.mark.parametrize("actor", ["owner", "other_user", "other_team", "team_admin", "founder"])
async def test_cross_room_citations_follow_the_isolation_matrix(fake_ollama, index_all, roles, team, actor):
    """Only what the asker may read is drawn on: the owner's rooms, and a founder's team rooms."""
    owner = roles["owner"]
    secret = await database_sync_to_async(RoomFactory)(owner=owner, team=team, name="Secret")
    said = await database_sync_to_async(_said)(owner, secret, "The vault code is 4512; the key hangs in the study.")
    await database_sync_to_async(index_all)()
    asker = roles[actor]
    here = await database_sync_to_async(RoomFactory)(owner=asker)
    reply = await _asked(asker, here, "What is the vault code, and where is the key?", search_all_rooms=True)
    cited = [c.get("message_id") for c in reply.metadata.get("citations", [])]
    assert cited == ([str(said.pk)] if actor in ("owner", "founder") else [])
    system = [t["content"] for t in fake_ollama.stats.last_request["messages"] if t["role"] == "system"]
    assert ("4512" in "".join(system)) == (actor in ("owner", "founder"))


# --- the same over server-sent events --------------------------------------------------------------------

async def _sse(user, room, body: dict):
    _token, raw = await database_sync_to_async(create_api_token)(user=user, name="sse")
    response = await BearerClient(raw).post(f"/api/v1/chat/sessions/{room.pk}/messages",
                                            {"max_tokens": 8, **body}, content_type="application/json")
    return response


async def test_sse_sends_files_and_search_all_rooms_as_the_websocket_does(fake_ollama, index_all):
    user, room = await _room_with_file("runbook.md", GUIDE.encode())
    notes = await _upload(user, room, "garden.md", NOTES.encode())
    ops = await database_sync_to_async(RoomFactory)(owner=user, name="Ops")
    await database_sync_to_async(_said)(user, ops, "Falcon staging moved from port 8443 to port 9443 on Monday.")
    await database_sync_to_async(index_all)()

    response = await _sse(user, room, {"content": "Summarise this file.", "files": [str(notes.pk)]})
    assert response.status_code == 200
    done = parse_sse(await read(response))[-1]
    assert done[0] == "done"
    reply = await database_sync_to_async(Message.objects.filter(room=room, role="assistant").latest)("created_at")
    assert [c["file_id"] for c in reply.metadata["citations"]] == [str(notes.pk)]

    response = await _sse(user, room, {"content": "Which port does the Falcon staging cluster listen on?",
                                       "search_all_rooms": True})
    assert parse_sse(await read(response))[-1][0] == "done"
    reply = await database_sync_to_async(Message.objects.filter(room=room, role="assistant").latest)("created_at")
    assert ("message", "Ops") in {(c["kind"], c.get("room_name")) for c in reply.metadata["citations"]}


@pytest.mark.parametrize("body", [{"files": "not-a-list"}, {"files": ["not-a-uuid"]}, {"search_all_rooms": "yes"}])
async def test_sse_refuses_malformed_retrieval_fields_with_a_json_400(fake_ollama, body):
    user, room = await _room_with_file("runbook.md", GUIDE.encode())
    response = await _sse(user, room, {"content": "Summarise this file.", **body})
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert not await database_sync_to_async(Message.objects.filter(room=room).exists)()


async def test_sse_refuses_another_rooms_file_with_a_404_and_writes_nothing(fake_ollama):
    user, room = await _room_with_file("runbook.md", GUIDE.encode())
    _other_user, other_room = await _room_with_file("garden.md", NOTES.encode())
    foreign = await database_sync_to_async(lambda: other_room.attachments.get())()
    response = await _sse(user, room, {"content": "Summarise this file.", "files": [str(foreign.pk)]})
    assert response.status_code == 404 and response.json()["error"]["code"] == "file_not_found"
    assert not await database_sync_to_async(Message.objects.filter(room=room).exists)()
