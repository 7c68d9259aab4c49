"""Generation services: recovery after a crash, prompt assembly and the context budget."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from chat import generation, services
from chat.jobs import fit_to_context
from chat.models import Message, Stream
from models_mgmt.providers import ChatTurn, GenerationOptions, ModelInfo, ProviderError
from tests.factories import RoomFactory

pytestmark = pytest.mark.django_db


def _streaming_reply(room, worker: str, heartbeat_age: float = 0) -> Stream:
    reply = services.append_message(room=room, role="assistant", content="half a sent", status="streaming")
    stream = Stream.objects.create(room=room, message=reply, user=room.owner, worker=worker)
    Stream.objects.filter(pk=stream.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age))
    return stream


def test_dead_workers_replies_become_interrupted(user):
    room = RoomFactory(owner=user)
    dead_pid = _streaming_reply(room, f"{generation.HOSTNAME}:999999:abcd")
    stale = _streaming_reply(room, "other-host:1:ffff", heartbeat_age=60)
    alive_elsewhere = _streaming_reply(room, "other-host:1:eeee")
    mine = _streaming_reply(room, generation.WORKER_ID)
    assert generation.recover_interrupted_streams() == 2
    for stream, status in ((dead_pid, "interrupted"), (stale, "interrupted"), (alive_elsewhere, "streaming"),
                           (mine, "streaming")):
        message = Message.objects.get(pk=stream.message_id)
        assert message.status == status and message.content == "half a sent"


def test_recover_command(user, capsys):
    _streaming_reply(RoomFactory(owner=user), f"{generation.HOSTNAME}:999999:abcd")
    call_command("recover_streams")
    assert "recovered 1" in capsys.readouterr().out


def test_prompt_is_the_branch_leading_to_the_reply(user):
    room = services.create_room(owner=user, system_prompt="Be kind.")
    question = services.append_message(room=room, role="user", content="Q1", author=user)
    services.append_message(room=room, role="assistant", content="A1")
    services.append_message(room=room, role="user", content="Q2 (abandoned)", author=user)
    services.append_message(room=room, role="user", content="Q2", author=user,
                            parent=Message.objects.get(content="A1"))
    started = generation.regenerate_reply(room=room, user=user, message=None, model="m")
    assert [(t.role, t.content) for t in started.turns] == [
        ("system", "Be kind."), ("user", "Q1"), ("assistant", "A1"), ("user", "Q2"),
    ]
    override = generation.prompt_turns(room=room, parent_id=started.assistant.parent_id, system_prompt="Be brief.")
    assert override[0].content == "Be brief."
    room.refresh_from_db()
    assert room.active_leaf_id == started.assistant.pk and room.message_count == 5
    assert question.pk in {m.pk for m in Message.objects.filter(room=room)}


@pytest.mark.asyncio
async def test_context_budget_drops_oldest_turns_but_keeps_system_and_latest(fake_ollama):
    model = ModelInfo(name="fake-llm:latest", provider="ollama", upstream="fake-llm:latest", context_length=200)
    turns = [ChatTurn("system", "s" * 40)] + [ChatTurn("user", f"{i}" * 120) for i in range(6)]
    fitted = await fit_to_context(turns, model, GenerationOptions(max_tokens=64))
    assert fitted[0].role == "system" and fitted[-1] == turns[-1]
    assert len(fitted) < len(turns)
    with pytest.raises(ProviderError):
        await fit_to_context(turns, model, GenerationOptions(max_tokens=400))
