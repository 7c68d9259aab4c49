"""Generation services: recovery after a crash, prompt assembly and the context budget."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from chat import services
from chat.models import Message, Stream
from chat.streaming import jobs, writes
from chat.streaming.jobs import fit_to_context
from chatproject.errors import ApiError
from models_mgmt.providers import ChatTurn, GenerationOptions, ModelInfo, ProviderError
from models_mgmt.providers.base import estimate_tokens
from tests.factories import RoomFactory

pytestmark = pytest.mark.django_db


def _streaming_reply(room, worker: str, heartbeat_age: float = 0) -> Stream:
    reply = services.append_message(room=room, role="assistant", content="half a sent", status="streaming")
    stream = Stream.objects.create(room=room, message=reply, user=room.owner, worker=worker)
    Stream.objects.filter(pk=stream.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age))
    return stream


def test_dead_workers_replies_become_interrupted(user):
    room = RoomFactory(owner=user)
    dead_pid = _streaming_reply(room, f"{writes.HOSTNAME}:999999:abcd")
    stale = _streaming_reply(room, "other-host:1:ffff", heartbeat_age=60)
    alive_elsewhere = _streaming_reply(room, "other-host:1:eeee")
    mine = _streaming_reply(room, writes.WORKER_ID)
    assert writes.recover_interrupted_streams() == 2
    for stream, status in ((dead_pid, "interrupted"), (stale, "interrupted"), (alive_elsewhere, "streaming"),
                           (mine, "streaming")):
        message = Message.objects.get(pk=stream.message_id)
        assert message.status == status and message.content == "half a sent"


def test_recover_command(user, capsys):
    _streaming_reply(RoomFactory(owner=user), f"{writes.HOSTNAME}:999999:abcd")
    call_command("recover_streams")
    assert "recovered 1" in capsys.readouterr().out


def test_prompt_is_the_branch_leading_to_the_reply(user):
    room = services.create_room(owner=user, system_prompt="Be kind.")
    question = services.append_message(room=room, role="user", content="Q1", author=user)
    services.append_message(room=room, role="assistant", content="A1")
    services.append_message(room=room, role="user", content="Q2 (abandoned)", author=user)
    services.append_message(room=room, role="user", content="Q2", author=user,
                            parent=Message.objects.get(content="A1"))
    started = writes.regenerate_reply(room_id=room.pk, user=user, message=None, model="m")
    assert [(t.role, t.content) for t in started.turns] == [
        ("system", "Be kind."), ("user", "Q1"), ("assistant", "A1"), ("user", "Q2"),
    ]
    override = writes.branch_turns(room_id=room.pk, parent_id=started.assistant.parent_id, system_prompt="Be brief.")
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


def _dropping_oldest_until_it_fits(turns: list[ChatTurn], budget: int) -> list[ChatTurn]:
    """The rule stated plainly (every turn counted, the oldest dropped one at a time), as a reference."""
    counts = [estimate_tokens(turn.content) + 4 for turn in turns]
    system = 1 if turns and turns[0].role == "system" else 0
    keep_from = system
    while sum(counts[:system]) + sum(counts[keep_from:]) > budget and keep_from < len(turns) - 1:
        keep_from += 1
    return turns[:system] + turns[keep_from:]


@pytest.mark.asyncio
async def test_context_fit_matches_dropping_the_oldest_turn_by_turn(fake_ollama):
    model = ModelInfo(name="fake-llm:latest", provider="ollama", upstream="fake-llm:latest", context_length=700)
    options = GenerationOptions(max_tokens=64)
    budget = model.context_length - options.max_tokens - 32
    rng = random.Random(3)
    for _ in range(300):
        system = [ChatTurn("system", "s" * rng.randint(0, 900))] if rng.random() < 0.5 else []
        history = [ChatTurn(rng.choice(["user", "assistant"]), "x" * rng.randint(0, 400))
                   for _ in range(rng.randint(0, 90))]
        turns = system + history
        assert await fit_to_context(turns, model, options) == _dropping_oldest_until_it_fits(turns, budget)


@pytest.mark.asyncio
async def test_a_long_chat_counts_only_the_turns_that_can_fit(fake_ollama, monkeypatch):
    provider = jobs.registry.provider("ollama")
    asked: list[int] = []
    real_count = provider.count_tokens

    async def counting(*, model, texts):
        asked.append(len(texts))
        return await real_count(model=model, texts=texts)

    monkeypatch.setattr(provider, "count_tokens", counting)
    model = ModelInfo(name="fake-llm:latest", provider="ollama", upstream="fake-llm:latest", context_length=2048)
    turns = [ChatTurn("system", "Be kind.")] + [ChatTurn("user", "word " * 40) for _ in range(2000)]
    fitted = await fit_to_context(turns, model, GenerationOptions(max_tokens=256))
    assert fitted[0] == turns[0] and fitted[1:] == turns[-(len(fitted) - 1):]
    assert 10 < len(fitted) < 60
    assert sum(asked) <= 2 * jobs.FIT_BATCH_TURNS + 1  # not 2,001 counts for a window of a few dozen turns


def test_a_start_reads_at_most_max_turns_of_the_branch_newest_first(user):
    room = services.create_room(owner=user)
    for i in range(12):
        services.append_message(room=room, role="user" if i % 2 == 0 else "assistant", content=f"turn {i}")
    services.append_message(room=room, role="user", content="a sibling branch",
                            parent=Message.objects.get(content="turn 5"))
    services.append_message(room=room, role="assistant", content="on it")
    Message.objects.filter(content="turn 9").update(is_deleted=True)  # a deleted turn keeps the chain
    leaf = Message.objects.get(content="turn 11")
    everything = writes.branch_turns(room_id=room.pk, parent_id=leaf.pk, system_prompt="Sys.")
    assert [t.content for t in everything] == ["Sys."] + [f"turn {i}" for i in range(12) if i != 9]
    newest = writes.branch_turns(room_id=room.pk, parent_id=leaf.pk, system_prompt="Sys.", max_turns=4)
    assert [t.content for t in newest] == ["Sys.", "turn 7", "turn 8", "turn 10", "turn 11"]
    assert writes.branch_turns(room_id=room.pk, parent_id=None, system_prompt="") == []


@pytest.mark.asyncio
async def test_reading_at_most_max_prompt_turns_never_changes_the_fitted_prompt(fake_ollama):
    """The cap only skips turns that could never fit: the prompt is the same with and without it."""
    rng = random.Random(5)
    for _ in range(200):
        model = ModelInfo(name="fake-llm:latest", provider="ollama", upstream="fake-llm:latest",
                          context_length=rng.choice([160, 300, 700]))
        options = GenerationOptions(max_tokens=rng.choice([16, 64]))
        history = [ChatTurn("user", "x" * rng.choice([1, 2, 3, 4, 40, 400])) for _ in range(rng.randint(1, 250))]
        capped = history[-jobs.max_prompt_turns(model):]
        assert await fit_to_context(capped, model, options) == await fit_to_context(history, model, options)


def test_start_and_finish_rows_read_back_through_the_orm(user):
    project = services.create_project(owner=user, name="P")
    room = services.create_room(owner=user, project=project, system_prompt="Sys.")
    started = writes.send_user_message(room_id=room.pk, user=user, content="  Hello\n there ", model="m",
                                       control_channel="chan")
    question, reply = Message.objects.filter(room=room).order_by("created_at", "id")
    assert (question.role, question.content, question.author, question.metadata) == ("user", "  Hello\n there ", user,
                                                                                       {})
    assert (reply.pk, reply.parent_id, reply.status, reply.content) == (started.assistant.pk, question.pk,
                                                                        "streaming", "")
    assert reply.created_at > question.created_at and started.user_message.pk == question.pk
    stream = Stream.objects.get(pk=started.stream.pk)
    assert (stream.message_id, stream.user_id, stream.control_channel, stream.finished_at) == (reply.pk, user.pk,
                                                                                              "chan", None)
    room.refresh_from_db()
    assert (room.active_leaf_id, room.message_count, room.last_message_preview) == (reply.pk, 2, "Hello there")
    assert [(t.role, t.content) for t in started.turns] == [("system", "Sys."), ("user", "  Hello\n there ")]

    writes.finish_stream(stream_id=stream.pk, message_id=reply.pk, room_id=room.pk, text="An  answer",
                         status="complete", usage=writes.Usage(prompt_tokens=7, completion_tokens=3),
                         ttft_ms=4.5, tokens_per_second=99.0)
    reply.refresh_from_db()
    assert (reply.content, reply.status, reply.prompt_tokens, reply.completion_tokens, reply.time_to_first_token_ms,
            reply.tokens_per_second) == ("An  answer", "complete", 7, 3, 4.5, 99.0)
    stream.refresh_from_db()
    room.refresh_from_db()
    project.refresh_from_db()
    assert stream.finished_at is not None and room.last_message_preview == "An answer"
    assert project.last_chat_at == room.last_activity


def test_finish_leaves_the_preview_of_a_branch_switched_away(user):
    room = services.create_room(owner=user)
    earlier = services.append_message(room=room, role="user", content="Earlier", author=user, parent=None)
    first = writes.send_user_message(room_id=room.pk, user=user, content="Q", model="m")
    other = services.append_message(room=room, role="user", content="Another root", author=user, parent=None)
    services.switch_branch(room=room, message=other)  # the user looks at another branch meanwhile
    assert earlier.pk != other.pk
    room.refresh_from_db()
    preview = room.last_message_preview
    writes.finish_stream(stream_id=first.stream.pk, message_id=first.assistant.pk, room_id=room.pk,
                         text="old branch", status="complete", usage=writes.Usage(), ttft_ms=None,
                         tokens_per_second=None)
    room.refresh_from_db()
    assert room.last_message_preview == preview != "old branch"


def test_one_reply_at_a_time_per_room(user):
    room = services.create_room(owner=user)
    first = writes.send_user_message(room_id=room.pk, user=user, content="Q", model="m")
    for start in (
        lambda: writes.send_user_message(room_id=room.pk, user=user, content="again", model="m"),
        lambda: writes.regenerate_reply(room_id=room.pk, user=user, message=None, model="m"),
    ):
        with pytest.raises(ApiError) as refused:
            start()
        assert (refused.value.status_code, refused.value.error_code) == (409, "reply_in_progress")
    assert Message.objects.filter(room=room).count() == 2
    writes.finish_stream(stream_id=first.stream.pk, message_id=first.assistant.pk, room_id=room.pk, text="A",
                         status="complete", usage=writes.Usage(), ttft_ms=None, tokens_per_second=None)
    writes.regenerate_reply(room_id=room.pk, user=user, message=None, model="m")
    assert Message.objects.filter(room=room).count() == 3


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_recovery_tells_the_rooms_watchers_the_reply_ended(user):
    from channels.db import database_sync_to_async
    from channels.layers import get_channel_layer

    room = await database_sync_to_async(RoomFactory)(owner=user)
    stream = await database_sync_to_async(_streaming_reply)(room, f"{writes.HOSTNAME}:999999:abcd")
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(room.group_name, channel)
    assert await database_sync_to_async(writes.recover_interrupted_streams)() == 1
    event = await asyncio.wait_for(layer.receive(channel), 5)
    assert (event["type"], event["stream_id"], event["status"]) == ("stream.end", str(stream.pk), "interrupted")
