"""Replies use the room's files: upload → extract → chunk → embed → retrieve → cited reply, end to end."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.models import Message, MessageStatus
from search.services import upload_attachment
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
