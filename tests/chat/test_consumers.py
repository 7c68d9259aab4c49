"""The WebSocket protocol against the fake Ollama: streaming, fan-out, stop, errors, resume, limits."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat import services
from chat.models import Message, MessageStatus, Room
from chat.streaming import jobs, writes
from tests.chat.wsutil import connect, frames_until, is_end, text_of
from tests.factories import RoomFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

BROWSER = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]


@pytest.fixture
async def drain_jobs():
    """No job may outlive its test's event loop."""
    yield
    for job in list(jobs.JOBS.values()):
        job.request_stop()
        if job.task:
            await asyncio.wait_for(job.task, 5)


def _team_room_with_a_founder():
    """A member's room in a team, and a founder of that team (who may watch it, read-only)."""
    from accounts.models import Role
    from tests.factories import MembershipFactory, TeamFactory

    team = TeamFactory()
    owner, founder = UserFactory(), UserFactory()
    MembershipFactory(team=team, user=owner)
    MembershipFactory(team=team, user=founder, role=Role.FOUNDER)
    return owner, founder, RoomFactory(owner=owner, team=team)


@pytest.fixture
async def owner_room(db):
    user = await database_sync_to_async(UserFactory)()
    room = await database_sync_to_async(RoomFactory)(owner=user)
    return user, room


async def _reply_under_way(fake_ollama, user, room, *, tokens: int, delay_ms: int, seen: int):
    """A sender's socket with a reply of `tokens` streaming, once the sender has seen `seen` of them."""
    fake_ollama.configure(tokens=tokens, delay_ms=delay_ms)
    sender = await connect(user, room.pk)
    await sender.send_json_to({"type": "send_message", "content": "hi"})
    got = await frames_until(sender, lambda f: f["type"] == "token" and f["seq"] >= seen)
    return sender, got


async def test_send_streams_tokens_into_a_stored_message(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "Hello there"})
    frames = await frames_until(ws, is_end)
    kinds = [f["type"] for f in frames]
    assert kinds[:3] == ["message_created", "message_created", "stream_start"]
    assert kinds[-1] == "stream_end" and "token" in kinds
    assert frames[-1]["status"] == "complete"
    assert frames[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 20}
    seqs = [f["seq"] for f in frames if f["type"] == "token"]
    assert seqs == sorted(set(seqs)) and seqs[-1] == 20  # seq counts tokens; frames may batch a few
    # Deltas only: the frames concatenate to the reply exactly, so no frame repeats earlier text.
    reply = await database_sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    assert reply.content == text_of(frames) == "".join(f"t{i} " for i in range(20))
    assert reply.status == MessageStatus.COMPLETE and reply.completion_tokens == 20
    assert reply.time_to_first_token_ms is not None and reply.model == "fake-llm:latest"
    assert fake_ollama.stats.last_request["messages"] == [{"role": "user", "content": "Hello there"}]
    await ws.disconnect()


async def test_every_watcher_sees_the_same_stream(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    fake_ollama.configure(delay_ms=5)
    sender = await connect(user, room.pk)
    watcher = await connect(user, room.pk)
    assert (await sender.receive_json_from(timeout=5))["type"] == "presence"  # the watcher arrived
    await sender.send_json_to({"type": "send_message", "content": "hi"})
    sent = await frames_until(sender, is_end)
    seen = await frames_until(watcher, is_end)
    assert [f for f in sent if f["type"] == "token"] == [f for f in seen if f["type"] == "token"]
    await sender.disconnect()
    await watcher.disconnect()


async def test_stop_keeps_partial_text_and_frees_the_backend(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    fake_ollama.configure(tokens=2000, delay_ms=5)
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "long please"})
    frames = await frames_until(ws, lambda f: f["type"] == "token" and f["seq"] >= 3)
    stream_id = next(f["stream_id"] for f in frames if f["type"] == "stream_start")
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    await ws.send_json_to({"type": "stop", "stream_id": stream_id})
    rest = await frames_until(ws, is_end)
    assert loop.time() - sent_at < 1.0
    end = rest[-1]
    assert end["status"] == "cancelled"
    reply = await database_sync_to_async(Message.objects.get)(pk=end["message_id"])
    assert reply.status == MessageStatus.CANCELLED
    assert reply.content == text_of(frames + rest) and 3 <= len(reply.content.split()) < 2000
    for _ in range(50):
        if fake_ollama.stats.aborted == 1:
            break
        await asyncio.sleep(0.05)
    assert fake_ollama.stats.aborted == 1 and fake_ollama.stats.active == 0  # the upstream request was closed
    assert fake_ollama.stats.aborted_at - sent_at < 0.1  # within 100 ms (the fake notices at its next token)
    await ws.disconnect()


async def test_backend_dying_mid_stream_gives_error_and_keeps_partial(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    fake_ollama.configure(die_after=5, tokens=50)
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "hi"})
    frames = await frames_until(ws, is_end)
    errors = [f for f in frames if f["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "backend_error"
    assert frames[-1]["status"] == "error"
    reply = await database_sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    assert reply.status == MessageStatus.ERROR and reply.content == "t0 t1 t2 t3 t4 " and reply.error
    fake_ollama.configure(die_after=None, tokens=3)  # the server stays healthy
    await ws.send_json_to({"type": "send_message", "content": "again"})
    again = await frames_until(ws, is_end)
    assert again[-1]["status"] == "complete"
    await ws.disconnect()


async def test_late_joiner_resumes_without_loss_or_duplicates(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    sender, _got = await _reply_under_way(fake_ollama, user, room, tokens=60, delay_ms=10, seen=15)
    late = await connect(user, room.pk)
    await late.send_json_to({"type": "resume", "last_seq": 0})
    frames = await frames_until(late, is_end)
    sent = await frames_until(sender, is_end)
    resumed = [f for f in frames if f.get("resumed")]
    assert [f["type"] for f in resumed] == ["stream_start", "token"]
    assert resumed[1]["seq"] >= 15
    seqs = [f["seq"] for f in frames if f["type"] == "token"]
    assert seqs == sorted(set(seqs))  # strictly increasing: nothing doubled
    assert text_of(frames) == "".join(f"t{i} " for i in range(60))
    assert sent[-1]["message_id"] == frames[-1]["message_id"]
    await sender.disconnect()
    await late.disconnect()


async def test_reconnect_resumes_from_last_seq(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    # 40 tokens 30 ms apart: the reply must still be running after a disconnect and a reconnect (on PostgreSQL
    # and Redis those took long enough, now and then, for a quicker reply to have ended before the resume).
    first, got = await _reply_under_way(fake_ollama, user, room, tokens=40, delay_ms=30, seen=10)
    stream_id = next(f["stream_id"] for f in got if f["type"] == "stream_start")
    last_seq = got[-1]["seq"]
    await first.disconnect()  # the tab closes; the job goes on
    await asyncio.sleep(0.1)
    second = await connect(user, room.pk)
    await second.send_json_to({"type": "resume", "last_seq": last_seq, "stream_id": stream_id})
    rest = await frames_until(second, is_end)
    assert text_of(got) + text_of(rest) == "".join(f"t{i} " for i in range(40))
    await second.disconnect()


async def test_malformed_frames_get_errors_and_the_socket_stays_open(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    ws = await connect(user, room.pk)
    cases = [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "send_message"}', "validation_error"),
        ('{"type": "send_message", "content": "   "}', "validation_error"),
        ('{"type": "send_message", "content": "x", "options": {"temperature": 9}}', "validation_error"),
        ('{"type": "send_message", "content": "x", "model": "nope"}', "model_not_found"),
        ('{"type": "edit_message", "message_id": "00000000-0000-0000-0000-000000000000", "content": "x"}',
         "not_found"),
        ('{"type": "resume", "last_seq": -1}', "validation_error"),
        ('{"type": "send_message", "content": "\\ud800"}', "validation_error"),
        ('{"type": "send_message", "content": "a\\u0000b"}', "validation_error"),
        ('{"type": "stop", "stream_id": "not-a-uuid"}', "validation_error"),
        ('{"type": "stop", "stream_id": 5}', "validation_error"),
        ('{"type": "delete_message", "message_id": "x"}', "validation_error"),
        ('{"type": "send_message", "content": "x", "model": 5}', "validation_error"),
        ("[" * 5000 + "]" * 5000, "invalid_json"),
        ('{"type": "send_message", "content": ' + "[" * 5000 + "]" * 5000 + "}", "invalid_json"),
    ]
    for raw, code in cases:
        await ws.send_to(text_data=raw)
        frame = await ws.receive_json_from(timeout=5)
        assert frame["type"] == "error" and frame["code"] == code, (raw, frame)
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=5) == {"type": "pong"}
    assert await database_sync_to_async(Message.objects.filter(room=room).count)() == 0
    await ws.disconnect()


async def test_long_message_is_refused_with_the_limit(fake_ollama, owner_room, drain_jobs, settings):
    user, room = owner_room
    settings.MESSAGE_MAX_CHARS = 10
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "x" * 11})
    frame = await ws.receive_json_from(timeout=5)
    assert frame["code"] == "validation_error" and "limit is 10" in frame["message"]
    await ws.disconnect()


async def test_auth_and_scope(fake_ollama, owner_room):
    from channels.testing import WebsocketCommunicator

    from chatproject.asgi import application

    user, room = owner_room
    async def refused_with(communicator) -> int:
        """Accepted, then closed: a browser sees the close code only on a socket that was accepted."""
        connected, _ = await communicator.connect()
        assert connected
        closed = await communicator.receive_output(timeout=5)
        assert closed["type"] == "websocket.close"
        return closed["code"]

    anonymous = WebsocketCommunicator(application, f"/ws/chat/{room.pk}/", headers=BROWSER)
    assert await refused_with(anonymous) == 4401
    stranger = await database_sync_to_async(UserFactory)()
    from accounts.services import create_api_token

    _t, token = await database_sync_to_async(create_api_token)(user=stranger, name="x")
    intruder = WebsocketCommunicator(application, f"/ws/chat/{room.pk}/?token={token}",
                                     headers=BROWSER)
    assert await refused_with(intruder) == 4404
    bad = WebsocketCommunicator(application, f"/ws/chat/{room.pk}/?token=lcp_bogus", headers=BROWSER)
    assert await refused_with(bad) == 4401


async def test_founder_watches_read_only(fake_ollama, drain_jobs):
    owner, founder, room = await database_sync_to_async(_team_room_with_a_founder)()
    ws = await connect(founder, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "hi"})
    frame = await ws.receive_json_from(timeout=5)
    assert frame["code"] == "read_only"
    await ws.disconnect()


async def test_concurrent_stream_limit(fake_ollama, owner_room, drain_jobs, settings):
    user, room = owner_room
    second_room = await database_sync_to_async(RoomFactory)(owner=user)
    settings.STREAMS_PER_USER = 1
    fake_ollama.configure(tokens=200, delay_ms=20)
    ws = await connect(user, room.pk)
    other = await connect(user, second_room.pk)
    await ws.send_json_to({"type": "send_message", "content": "one"})
    await frames_until(ws, lambda f: f["type"] == "token")
    await other.send_json_to({"type": "send_message", "content": "two"})
    frame = await frames_until(other, lambda f: f["type"] == "error")
    assert frame[-1]["code"] == "too_many_streams"
    await ws.send_json_to({"type": "stop"})
    await frames_until(ws, is_end)
    await ws.disconnect()
    await other.disconnect()


async def test_a_send_while_a_reply_streams_is_refused_and_nothing_interleaves(
    fake_ollama, owner_room, drain_jobs
):
    user, room = owner_room
    fake_ollama.configure(tokens=40, delay_ms=10)
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "one"})
    await frames_until(ws, lambda f: f["type"] == "token")
    for frame in ({"type": "send_message", "content": "two"}, {"type": "regenerate"}):
        await ws.send_json_to(frame)
        refused = await frames_until(ws, lambda f: f["type"] == "error")
        assert refused[-1]["code"] == "reply_in_progress"
    frames = await frames_until(ws, is_end)
    assert frames[-1]["status"] == "complete"
    assert await database_sync_to_async(Message.objects.filter(room=room).count)() == 2
    await ws.send_json_to({"type": "send_message", "content": "two"})  # once it has ended, the next one goes
    frames = await frames_until(ws, is_end)
    assert frames[-1]["status"] == "complete"
    await ws.disconnect()


async def test_edit_regenerate_delete_and_branches(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    fake_ollama.configure(tokens=3)
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "first question"})
    frames = await frames_until(ws, is_end)
    question = frames[0]["message"]
    first_reply = frames[-1]["message_id"]
    await ws.send_json_to({"type": "regenerate"})
    regen = await frames_until(ws, is_end)
    second_reply = regen[-1]["message_id"]
    assert second_reply != first_reply
    await ws.send_json_to({"type": "edit_message", "message_id": question["id"], "content": "better question"})
    edited = await frames_until(ws, is_end)
    edit_msg = edited[0]["message"]
    assert edit_msg["content"] == "better question" and edit_msg["parent"] == question["parent"]

    def tree():
        room_now = Room.objects.get(pk=room.pk)
        from chat.selectors import active_branch

        branch = active_branch(room_now)
        return [m.content for m in branch.messages], {str(k): v for k, v in branch.siblings.items()}

    contents, siblings = await database_sync_to_async(tree)()
    assert contents == ["better question", "t0 t1 t2 "]
    assert len(siblings[edit_msg["id"]]) == 2  # the original question is a sibling
    replies = await database_sync_to_async(
        lambda: list(Message.objects.filter(parent_id=question["id"]).values_list("pk", flat=True))
    )()
    assert {str(pk) for pk in replies} == {first_reply, second_reply}
    await ws.send_json_to({"type": "delete_message", "message_id": edited[-1]["message_id"]})
    deleted = await ws.receive_json_from(timeout=5)
    assert deleted == {"type": "message_deleted", "message_id": edited[-1]["message_id"]}
    contents, _ = await database_sync_to_async(tree)()
    assert contents == ["better question"]
    await ws.disconnect()


async def test_partial_text_is_flushed_while_streaming(fake_ollama, owner_room, drain_jobs, settings):
    user, room = owner_room
    fake_ollama.configure(tokens=200, delay_ms=15)
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "hi"})
    frames = await frames_until(ws, lambda f: f["type"] == "stream_start")
    await asyncio.sleep(1.2)
    partial = await database_sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    assert partial.status == MessageStatus.STREAMING and len(partial.content.split()) >= 10
    await ws.send_json_to({"type": "stop"})
    await frames_until(ws, is_end)
    await ws.disconnect()


async def test_typing_goes_to_the_others_and_clears_on_send(fake_ollama, drain_jobs):
    owner, founder, room = await database_sync_to_async(_team_room_with_a_founder)()
    fake_ollama.configure(tokens=3, delay_ms=1)
    tab, other_tab = await connect(owner, room.pk), await connect(owner, room.pk)
    watcher = await connect(founder, room.pk)
    await tab.send_json_to({"type": "typing", "is_typing": True})
    typing = await frames_until(watcher, lambda f: f["type"] == "typing")
    assert typing[-1] == {"type": "typing", "user": owner.username, "is_typing": True}
    await tab.send_json_to({"type": "send_message", "content": "hi"})
    cleared = await frames_until(watcher, lambda f: f["type"] == "typing")
    assert cleared[-1]["is_typing"] is False
    frames = await frames_until(other_tab, is_end)  # your own typing never shows, not even in another tab
    assert not [f for f in frames if f["type"] == "typing"]
    for ws in (tab, other_tab, watcher):
        await ws.disconnect()


async def test_room_changes_reach_watchers_and_the_next_send(fake_ollama, owner_room, drain_jobs):
    from chat import services

    user, room = owner_room
    ws = await connect(user, room.pk)
    await database_sync_to_async(services.update_room)(room=room, changes={"model": "fake-coder:7b", "name": "Code"})
    updated = await ws.receive_json_from(timeout=5)
    assert updated["type"] == "room_updated" and updated["room"]["name"] == "Code"
    await ws.send_json_to({"type": "send_message", "content": "hi"})
    frames = await frames_until(ws, is_end)
    assert next(f for f in frames if f["type"] == "stream_start")["model"] == "fake-coder:7b"
    await database_sync_to_async(services.soft_delete_room)(room=room)
    assert (await ws.receive_json_from(timeout=5))["type"] == "room_deleted"
    assert (await ws.receive_output(timeout=5))["type"] == "websocket.close"


async def test_branch_switch_reaches_other_tabs(fake_ollama, owner_room, drain_jobs):
    from chat import services

    user, room = owner_room

    def tree():
        question = services.append_message(room=room, role="user", content="Q", author=user)
        first = services.append_message(room=room, role="assistant", content="A1")
        services.append_message(room=room, role="assistant", content="A2", parent=question)
        return first

    first = await database_sync_to_async(tree)()
    ws = await connect(user, room.pk)
    await database_sync_to_async(services.switch_branch)(room=room, message=first)
    assert await ws.receive_json_from(timeout=5) == {"type": "branch_switched", "active_leaf": str(first.pk)}
    await ws.disconnect()


class DroppingLayer:
    """The real layer, except that chosen stream events vanish, as channel layers may (at most once)."""

    def __init__(self, layer, drop):
        self.layer, self.drop, self.dropped = layer, drop, []

    def __getattr__(self, name):
        if name == "group_send_nowait":  # the in-memory layer's waitless send drops the same events
            send_nowait = self.layer.group_send_nowait
            return lambda group, message, **kw: self.dropped.append(message) if self.drop(message) else send_nowait(
                group, message, **kw)
        return getattr(self.layer, name)

    async def group_send(self, group, message):
        if self.drop(message):
            self.dropped.append(message)
            return
        await self.layer.group_send(group, message)


async def _stream_with_losses(monkeypatch, user, room, drop, *, hide_local_job: bool = False):
    from channels.layers import get_channel_layer

    import chat.streaming.replies

    dropping = DroppingLayer(get_channel_layer(), drop)
    monkeypatch.setattr(jobs, "get_channel_layer", lambda: dropping)
    if hide_local_job:  # the consumer must then ask the job through its control channel, as across workers
        monkeypatch.setattr(chat.streaming.replies, "JOBS", {})
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "Hello"})
    frames = await frames_until(ws, is_end)
    await ws.disconnect()
    reply = await database_sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    return frames, reply, dropping.dropped


@pytest.mark.parametrize("hide_local_job", [False, True])
async def test_a_lost_token_event_is_filled_in(fake_ollama, owner_room, drain_jobs, monkeypatch, hide_local_job):
    user, room = owner_room
    fake_ollama.configure(tokens=30, delay_ms=3)
    token_events = 0

    def drop(message):  # the first and the fourth token events: several tokens may share one event
        nonlocal token_events
        if message["type"] != "stream.token":
            return False
        token_events += 1
        return token_events in (1, 4)

    frames, reply, dropped = await _stream_with_losses(monkeypatch, user, room, drop, hide_local_job=hide_local_job)
    assert len(dropped) == 2
    seqs = [f["seq"] for f in frames if f["type"] == "token"]
    assert seqs == sorted(set(seqs)) and seqs[-1] == 30
    assert text_of(frames) == reply.content == "".join(f"t{i} " for i in range(30))


async def test_lost_last_tokens_come_from_the_stored_reply(fake_ollama, owner_room, drain_jobs, monkeypatch):
    user, room = owner_room
    fake_ollama.configure(tokens=12, delay_ms=3)
    frames, reply, dropped = await _stream_with_losses(
        monkeypatch, user, room, lambda m: m["type"] == "stream.token" and m["seq"] >= 10
    )
    assert dropped and reply.content == "".join(f"t{i} " for i in range(12))
    assert text_of(frames) == reply.content
    assert [f for f in frames if f["type"] == "token"][-1]["seq"] == 12


async def test_a_resume_soon_after_joining_covers_tokens_that_arrived_first(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    sender, _got = await _reply_under_way(fake_ollama, user, room, tokens=60, delay_ms=10, seen=10)
    late = await connect(user, room.pk)
    await asyncio.sleep(0.15)  # live tokens reach the new socket before its resume does
    await late.send_json_to({"type": "resume", "last_seq": 0})
    frames = await frames_until(late, is_end)
    await frames_until(sender, is_end)
    seqs = [f["seq"] for f in frames if f["type"] == "token"]
    assert frames[0]["type"] == "stream_start" and frames[0]["resumed"]  # nothing came before the catch-up
    assert seqs == sorted(set(seqs)) and seqs[-1] == 60
    assert text_of(frames) == "".join(f"t{i} " for i in range(60))


async def test_a_watcher_that_never_resumes_gets_the_live_tokens_after_a_grace(fake_ollama, owner_room, drain_jobs):
    user, room = owner_room
    sender, _got = await _reply_under_way(fake_ollama, user, room, tokens=80, delay_ms=10, seen=5)
    watcher = await connect(user, room.pk)
    frames = await frames_until(watcher, is_end)
    await frames_until(sender, is_end)
    seqs = [f["seq"] for f in frames if f["type"] == "token"]
    assert seqs and seqs == sorted(set(seqs)) and seqs[-1] == 80  # the live tail, in order, once
    assert "".join(f["delta"] for f in frames if f["type"] == "token") == "".join(
        f"t{i} " for i in range(80))[-sum(len(f["delta"]) for f in frames if f["type"] == "token"):]


async def test_a_stop_lost_before_the_job_subscribed_still_stops_it_soon(
    fake_ollama, owner_room, drain_jobs, monkeypatch
):
    """Pub/sub layers drop messages for channels nobody has subscribed yet: the job looks at the stop flag
    in the database once its subscription is out, rather than at its first heartbeat seconds later."""
    from channels.layers import get_channel_layer

    from chat.models import Stream

    monkeypatch.setattr(jobs, "RedisPubSubChannelLayer", type(get_channel_layer()))  # as a pub/sub layer is
    real_begin = writes._begin

    def begin_with_an_early_stop(**kwargs):
        started = real_begin(**kwargs)
        Stream.objects.filter(pk=started.stream.pk).update(cancel_requested=True)  # its message went nowhere
        return started

    monkeypatch.setattr(writes, "_begin", begin_with_an_early_stop)
    user, room = owner_room
    fake_ollama.configure(tokens=200, delay_ms=20)
    ws = await connect(user, room.pk)
    began = asyncio.get_running_loop().time()
    await ws.send_json_to({"type": "send_message", "content": "hi"})
    frames = await frames_until(ws, is_end, timeout=3)
    assert frames[-1]["status"] == "cancelled"
    assert asyncio.get_running_loop().time() - began < 1.5  # the heartbeat would have taken 5 s
    await ws.disconnect()


async def _job_tasks_left(timeout: float = 2.0) -> list[asyncio.Task]:
    """Tasks of any GenerationJob still running once `timeout` has passed (or none, as soon as they end)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = [task for task in asyncio.all_tasks()
                if not task.done() and task.get_coro().__qualname__.startswith("GenerationJob.")]
        if not left or loop.time() >= deadline:
            return left
        await asyncio.sleep(0.05)


async def test_a_finished_reply_leaves_no_task_of_its_job_behind(fake_ollama, owner_room, drain_jobs):
    """A job's helpers (publisher, control loop, heartbeat) end with it, on every channel layer: a helper that
    kept running would keep the whole job, its text included, for the life of the worker."""
    user, room = owner_room
    fake_ollama.configure(tokens=20, delay_ms=2)
    ws = await connect(user, room.pk)
    for i in range(4):
        await ws.send_json_to({"type": "send_message", "content": f"reply {i}"})
        await frames_until(ws, is_end)
    await ws.disconnect()
    assert await _job_tasks_left() == []


async def test_a_job_whose_control_receive_swallows_its_cancellation_still_ends(
    fake_ollama, owner_room, drain_jobs, monkeypatch
):
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    real_receive = layer.receive

    async def receive_swallowing_one_cancel(channel):
        try:
            return await real_receive(channel)
        except asyncio.CancelledError:  # as channels-redis can, when redis-py turns it into a timeout
            return await real_receive(channel)

    monkeypatch.setattr(layer, "receive", receive_swallowing_one_cancel)
    user, room = owner_room
    fake_ollama.configure(tokens=10, delay_ms=2)
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "send_message", "content": "hi"})
    await frames_until(ws, is_end)
    await ws.disconnect()
    assert await _job_tasks_left() == []


async def test_a_reply_that_ended_while_away_is_reported_on_resume(fake_ollama, owner_room):
    """A worker restarted mid-reply: the reconnecting page learns the reply is `interrupted`, with its text."""
    from chat.models import Stream

    user, room = owner_room

    def reply_of_a_dead_worker():
        reply = services.append_message(room=room, role="assistant", content="half a sent", status="streaming")
        stream = Stream.objects.create(room=room, message=reply, user=user, worker=f"{writes.HOSTNAME}:999999:dead")
        writes.recover_interrupted_streams()
        return stream

    stream = await database_sync_to_async(reply_of_a_dead_worker)()
    ws = await connect(user, room.pk)
    await ws.send_json_to({"type": "resume", "stream_id": str(stream.pk), "last_seq": 7})
    ended = await ws.receive_json_from(timeout=5)
    assert (ended["type"], ended["stream_id"], ended["status"], ended["content"]) == (
        "stream_end", str(stream.pk), "interrupted", "half a sent")
    assert await ws.receive_json_from(timeout=5) == {"type": "resumed", "streams": []}
    await ws.disconnect()


async def _closed_within_a_second(ws) -> int:
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        output = await ws.receive_output(timeout=1)
        if output["type"] == "websocket.close":
            assert loop.time() - began < 1
            return output["code"]


async def test_revoking_the_token_closes_its_sockets_only(fake_ollama, owner_room):
    from accounts.models import ApiToken
    from accounts.services import create_api_token, revoke_api_token

    user, room = owner_room
    token, raw = await database_sync_to_async(create_api_token)(user=user, name="revoke-me")
    doomed = await connect(user, room.pk, token=raw)
    kept = await connect(user, room.pk)
    await doomed.receive_json_from(timeout=5)  # kept's presence
    stored = await database_sync_to_async(ApiToken.objects.get)(pk=token.pk)
    await database_sync_to_async(revoke_api_token)(token=stored)
    assert await _closed_within_a_second(doomed) == 4401
    await kept.send_json_to({"type": "ping"})
    assert (await frames_until(kept, lambda f: f["type"] == "pong"))[-1] == {"type": "pong"}
    await kept.disconnect()


async def test_deactivating_the_account_closes_every_socket(fake_ollama, owner_room):
    user, room = owner_room
    ws = await connect(user, room.pk)

    def deactivate():
        user.is_active = False
        user.save(update_fields=["is_active"])

    await database_sync_to_async(deactivate)()
    assert await _closed_within_a_second(ws) == 4401


async def test_signing_out_closes_the_sessions_socket():
    """A browser's socket rides on its session cookie; signing out in any tab ends it."""
    from channels.testing import WebsocketCommunicator
    from django.test import AsyncClient

    from chatproject.asgi import application
    from tests.factories import PASSWORD

    user = await database_sync_to_async(UserFactory)(username="sid")
    room = await database_sync_to_async(RoomFactory)(owner=user)
    browser = AsyncClient()
    assert await browser.alogin(username="sid", password=PASSWORD)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    ws = WebsocketCommunicator(application, f"/ws/chat/{room.pk}/", headers=[*BROWSER, (b"cookie", cookie)])
    connected, _ = await ws.connect()
    assert connected
    await ws.receive_json_from(timeout=5)  # presence
    await browser.post("/signout/")
    assert await _closed_within_a_second(ws) == 4401


async def test_a_bearer_header_authenticates_a_socket(fake_ollama, owner_room):
    from channels.testing import WebsocketCommunicator

    from accounts.services import create_api_token
    from chatproject.asgi import application

    user, room = owner_room
    _t, raw = await database_sync_to_async(create_api_token)(user=user, name="header")
    ws = WebsocketCommunicator(application, f"/ws/chat/{room.pk}/",
                               headers=[*BROWSER, (b"authorization", f"Bearer {raw}".encode())])
    connected, _ = await ws.connect()
    assert connected
    await ws.disconnect()


async def test_the_model_a_message_names_becomes_the_rooms_and_other_tabs_follow(fake_ollama, owner_room,
                                                                               drain_jobs):
    user, room = owner_room
    tab, other_tab = await connect(user, room.pk), await connect(user, room.pk)
    await tab.send_json_to({"type": "send_message", "content": "hi", "model": "fake-coder:7b"})
    frames = await frames_until(other_tab, is_end)
    updated = [f for f in frames if f["type"] == "room_updated"]
    assert [f["room"]["model"] for f in updated] == ["ollama/fake-coder:7b"]
    await frames_until(tab, is_end)
    assert (await database_sync_to_async(Room.objects.get)(pk=room.pk)).model == "ollama/fake-coder:7b"
    # The same model again changes nothing, and a message naming no model keeps the room's.
    for frame in ({"model": "ollama/fake-coder:7b"}, {}):
        await tab.send_json_to({"type": "send_message", "content": "again", **frame})
        frames = await frames_until(other_tab, is_end)
        assert not [f for f in frames if f["type"] == "room_updated"]
        assert next(f for f in frames if f["type"] == "stream_start")["model"] == "fake-coder:7b"
        await frames_until(tab, is_end)
    for ws in (tab, other_tab):
        await ws.disconnect()
