"""The SSE start's fast path (chat/sse_asgi.py): it answers what it takes exactly as the DRF view would, and
hands everything else to the view before anything is counted or written."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiToken
from accounts.services import create_api_token
from chat import broadcast, sse_asgi
from chat.models import Message, MessageStatus
from chat.sse_asgi import FastSSEStart
from tests.asgi_driver import AsgiResponse, asgi_request
from tests.chat.test_sse import parse_sse, team_room_with_tokens
from tests.factories import RoomFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

MODEL = "fake-llm:latest"


@pytest.fixture
def fast_starts(monkeypatch) -> list[str]:
    """Rooms whose start the fast path's service began (not those it handed over)."""
    started, real = [], sse_asgi.send_as_token_holder

    def spy(**kwargs):
        result = real(**kwargs)
        started.append(str(kwargs["room"]))
        return result

    monkeypatch.setattr(sse_asgi, "send_as_token_holder", spy)
    return started


async def _owner():
    user = await sync_to_async(UserFactory)()
    _token, raw = await sync_to_async(create_api_token)(user=user, name="fast")
    return user, raw


async def _room(user):
    return await sync_to_async(RoomFactory)(owner=user)


async def post(room_id, body, headers: dict[str, str] | None = None, raw: bytes | None = None) -> AsgiResponse:
    from chatproject.asgi import application

    content = raw if raw is not None else json.dumps(body).encode()
    return await asgi_request(application, "POST", f"/api/v1/chat/sessions/{room_id}/messages", content,
                              {"content-type": "application/json", **(headers or {})})


def bearer(raw: str) -> dict[str, str]:
    return {"authorization": f"Bearer {raw}"}


def shape(response: AsgiResponse) -> tuple:
    """What must be the same whichever path answered: status, headers, and the body (event names and keys of a
    stream, runs of tokens as one since a frame may carry several; the whole error envelope otherwise)."""
    if response.headers.get("content-type") == "text/event-stream":
        body = []
        for name, data in parse_sse(response.body.decode()):
            if not body or body[-1] != (name, sorted(data)):
                body.append((name, sorted(data)))
    elif response.headers.get("content-type") == "application/json":
        body = json.loads(response.body)
    else:
        body = response.body
    return response.status, response.headers, body


async def both_ways(settings, make_request) -> tuple[AsgiResponse, AsgiResponse]:
    """The same request answered by the fast path (when it takes it) and by the DRF view alone."""
    fast = await make_request()
    settings.SSE_FAST_PATH = False
    try:
        view = await make_request()
    finally:
        settings.SSE_FAST_PATH = True
    return fast, view


async def test_a_bearer_start_streams_and_stores_through_the_fast_path(fake_ollama, fast_starts):
    user, raw = await _owner()
    room = await _room(user)
    body = {"content": "hi", "model": MODEL, "temperature": 0.3, "top_k": 5, "system_prompt": "Be brief."}
    response = await post(room.pk, body, bearer(raw))
    assert fast_starts == [str(room.pk)]
    assert response.status == 200 and response.headers["content-type"] == "text/event-stream"
    events = parse_sse(response.body.decode())
    assert [name for name, _ in events][0] == "start" and events[-1][0] == "done"
    assert events[-1][1]["status"] == "complete" and events[-1][1]["usage"]["completion_tokens"] == 20
    stored = await sync_to_async(Message.objects.get)(pk=events[0][1]["message_id"])
    assert stored.status == MessageStatus.COMPLETE
    assert stored.content == "".join(data["delta"] for name, data in events if name == "token")
    sent = fake_ollama.stats.last_request
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["options"]["temperature"] == 0.3 and sent["options"]["top_k"] == 5
    token = await sync_to_async(ApiToken.objects.get)(user=user)
    assert token.last_used_at is not None  # authenticated as the view does, bookkeeping included


@pytest.mark.parametrize("accept", [None, "text/event-stream", "application/json", "*/*"])
async def test_the_fast_path_answers_as_the_view_does(fake_ollama, settings, fast_starts, accept):
    user, raw = await _owner()
    rooms = [await _room(user), await _room(user)]
    headers = bearer(raw) | ({"accept": accept} if accept else {})
    fast, view = await both_ways(settings, lambda: post(rooms.pop().pk, {"content": "hi", "model": MODEL}, headers))
    assert len(fast_starts) == 1
    assert shape(fast) == shape(view)
    assert fast.status == 200 and fast.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "case",
    [
        "anonymous", "not-bearer", "bad-token", "bad-json", "empty-content", "string-temperature", "no-model",
        "unknown-model", "form-body", "html-accept", "weighted-accept", "bad-host", "bad-room-id", "nan",
        "utf-16",
    ],
)
async def test_what_the_fast_path_does_not_take_gets_the_views_answer(fake_ollama, settings, fast_starts, case):
    user, raw = await _owner()
    room = await _room(user)
    body, headers, content = {"content": "hi", "model": MODEL}, bearer(raw), None
    if case == "anonymous":
        headers = {}
    elif case == "not-bearer":
        headers = {"authorization": f"Token {raw}"}
    elif case == "bad-token":
        headers = bearer("not-a-token")
    elif case == "bad-json":
        content = b'{"content": '
    elif case == "nan":  # Python's json reads it; DRF's strict parser refuses it
        content = b'{"content": "hi", "model": "fake-llm:latest", "temperature": NaN}'
    elif case == "utf-16":  # Python's json guesses the encoding; DRF decodes UTF-8 as the header says
        content = json.dumps(body).encode("utf-16")
    elif case == "empty-content":
        body["content"] = ""
    elif case == "string-temperature":  # valid for DRF, which coerces it; not plainly valid
        body["temperature"] = "0.5"
    elif case == "no-model":  # the room's own model: the view looks the room up first
        del body["model"]
    elif case == "unknown-model":
        body["model"] = "nope"
    elif case == "form-body":
        content, headers = b"content=hi&model=fake-llm%3Alatest", {**headers, "content-type":
                                                                   "application/x-www-form-urlencoded"}
    elif case == "html-accept":
        headers = {**headers, "accept": "text/html"}
    elif case == "weighted-accept":  # an event stream, asked for in a way the fast path leaves to the view
        headers = {**headers, "accept": "text/event-stream, application/json;q=0.9"}
    elif case == "bad-host":
        headers = {**headers, "host": "evil.example"}
    room_id = "nope" if case == "bad-room-id" else room.pk
    fast, view = await both_ways(settings, lambda: post(room_id, body, headers, content))
    assert fast_starts == []
    assert shape(fast) == shape(view)
    expected = {"anonymous": 401, "not-bearer": 401, "bad-token": 401, "bad-json": 400, "empty-content": 400,
                "string-temperature": 200, "no-model": 200, "unknown-model": 400, "form-body": 200,
                "weighted-accept": 200, "bad-host": 400, "bad-room-id": 404, "nan": 400, "utf-16": 400}
    if case in expected:
        assert fast.status == expected[case]
    if case == "bad-token":
        assert fast.headers["www-authenticate"] == "Bearer"


async def test_a_session_cookie_start_goes_to_the_view_with_its_csrf_check(fake_ollama, settings, fast_starts):
    user = await sync_to_async(UserFactory)()
    room = await _room(user)

    def session_cookie() -> str:
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    session = await sync_to_async(session_cookie)()
    csrf = "a" * 32
    without = {"cookie": f"sessionid={session}"}
    with_csrf = {"cookie": f"sessionid={session}; csrftoken={csrf}", "x-csrftoken": csrf}
    refused = await post(room.pk, {"content": "hi", "model": MODEL}, without)
    assert refused.status == 403
    accepted = await post(room.pk, {"content": "hi", "model": MODEL}, with_csrf)
    assert accepted.status == 200 and b"event: done" in accepted.body
    assert fast_starts == []


async def test_errors_after_the_request_counted_match_the_view(fake_ollama, settings, fast_starts):
    """Scope and limits are decided in the start itself: another user's room is a 404, a founder's a 403,
    the sixth stream a 429, in the view's words, and nothing is written."""

    room, tokens = await sync_to_async(team_room_with_tokens)()
    body = {"content": "x", "model": MODEL}
    for who, status in (("stranger", 404), ("founder", 403)):
        fast, view = await both_ways(settings, lambda who=who: post(room.pk, body, bearer(tokens[who])))
        assert fast.status == status and shape(fast) == shape(view)
    assert not await sync_to_async(Message.objects.filter(room=room).exists)()

    settings.STREAMS_PER_USER = 0
    fast, view = await both_ways(settings, lambda: post(room.pk, body, bearer(tokens["owner"])))
    assert fast.status == 429 and json.loads(fast.body)["error"]["code"] == "too_many_streams"
    assert shape(fast) == shape(view)
    assert not await sync_to_async(Message.objects.filter(room=room).exists)()


async def test_throttles_count_each_start_once_and_a_throttled_one_gets_the_views_429(fake_ollama, settings,
                                                                                       fast_starts):
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], "user": "3/min"}
    settings.REST_FRAMEWORK = rest
    cache.clear()
    user, raw = await _owner()
    room = await _room(user)
    statuses = [(await post(room.pk, {"content": f"m{i}", "model": MODEL}, bearer(raw))).status for i in range(3)]
    assert statuses == [200, 200, 200] and len(fast_starts) == 3  # counted once each, or the third would fail
    throttled = await post(room.pk, {"content": "m4", "model": MODEL}, bearer(raw))
    assert len(fast_starts) == 3  # handed to the view, which refused it
    assert throttled.status == 429 and json.loads(throttled.body)["error"]["code"] == "throttled"
    assert int(throttled.headers["retry-after"]) >= 1
    assert await sync_to_async(Message.objects.filter(room=room, role="user").count)() == 3


async def test_the_fast_path_can_be_turned_off(fake_ollama, settings, fast_starts):
    settings.SSE_FAST_PATH = False
    user, raw = await _owner()
    room = await _room(user)
    response = await post(room.pk, {"content": "hi", "model": MODEL}, bearer(raw))
    assert response.status == 200 and b"event: done" in response.body
    assert fast_starts == []


async def test_the_view_checks_only_what_the_fast_path_checks():
    """The fast path authenticates with a Bearer token, requires a user and applies the view's throttles: if
    the view's policy grows (another permission, another authenticator first), the fast path must too."""
    from rest_framework.permissions import IsAuthenticated

    from accounts.authentication import BearerTokenAuthentication
    from chat.sse import MessageSendApi

    assert MessageSendApi.permission_classes == [IsAuthenticated]
    assert MessageSendApi.authentication_classes[0] is BearerTokenAuthentication
    assert MessageSendApi.versioning_class is None


async def test_an_unauthenticated_start_never_makes_the_backends_be_asked(fake_ollama, fast_starts):
    """The fast path looks the model up before the start authenticates: only in the cached list."""
    user, raw = await _owner()
    room = await _room(user)
    assert (await post(room.pk, {"content": "hi", "model": MODEL}, bearer(raw))).status == 200
    asked = fake_ollama.stats.tags
    for i in range(3):
        refused = await post(room.pk, {"content": "hi", "model": f"made-up-{i}"}, bearer("not-a-token"))
        assert refused.status == 401
    assert fake_ollama.stats.tags == asked


@pytest.mark.parametrize("fast_path", [True, False])
async def test_a_start_and_its_first_token_go_out_in_one_write(fake_ollama, settings, fast_path):
    settings.SSE_FAST_PATH = fast_path
    user, raw = await _owner()
    room = await _room(user)
    response = await post(room.pk, {"content": "hi", "model": MODEL}, bearer(raw))
    first = [chunk for chunk in response.chunks if chunk][0]
    assert [name for name, _ in parse_sse(first.decode())][:2] == ["start", "token"]
    events = parse_sse(response.body.decode())
    assert events[-1][0] == "done" and sum(1 for name, _ in events if name == "start") == 1


SECURITY_SETTINGS = {
    "hsts-behind-proxy": {"SECURE_HSTS_SECONDS": 3600, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
                          "SECURE_HSTS_PRELOAD": True, "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")},
    "other-policies": {"X_FRAME_OPTIONS": "SAMEORIGIN", "SECURE_REFERRER_POLICY": ["no-referrer", "strict-origin"],
                       "SECURE_CROSS_ORIGIN_OPENER_POLICY": None, "SECURE_CONTENT_TYPE_NOSNIFF": False},
    "ssl-redirect": {"SECURE_SSL_REDIRECT": True},
}


@pytest.mark.parametrize("variant", sorted(SECURITY_SETTINGS))
async def test_security_headers_follow_the_settings_as_djangos_middleware_does(fake_ollama, settings, variant):
    """The headers come from Django's own middleware code, under whatever security settings are set."""
    from chatproject.asgi import SharedThreadASGIHandler

    for name, value in SECURITY_SETTINGS[variant].items():
        setattr(settings, name, value)
    app = FastSSEStart(fallback=SharedThreadASGIHandler())  # both read their settings when made, as a worker's do
    owner, raw = await _owner()
    _stranger, other = await _owner()
    headers = bearer(raw) | {"content-type": "application/json", "x-forwarded-proto": "https"}

    async def ask(room_id, token_headers):
        return await asgi_request(app, "POST", f"/api/v1/chat/sessions/{room_id}/messages",
                                  json.dumps({"content": "hi", "model": MODEL}).encode(), token_headers)

    room = await _room(owner)
    started, view_started = await both_ways(settings, lambda: ask(room.pk, headers))
    assert shape(started) == shape(view_started)
    refused, view_refused = await both_ways(settings, lambda: ask(room.pk, headers | bearer(other)))  # a stranger
    assert shape(refused) == shape(view_refused)
    if variant == "ssl-redirect":  # plain HTTP (no proxy header is trusted here): Django redirects both
        assert started.status == refused.status == 301
    else:
        assert started.status == 200 and refused.status == 404
    if variant == "hsts-behind-proxy":
        assert started.headers["strict-transport-security"] == "max-age=3600; includeSubDomains; preload"
        assert refused.headers["strict-transport-security"] == "max-age=3600; includeSubDomains; preload"


@pytest.mark.parametrize("size", ["small", "large"])
async def test_a_body_in_pieces_is_read_whole_and_a_large_one_goes_to_the_view(fake_ollama, fast_starts, size):
    """The path reads a body sent in pieces; above a megabyte it hands the pieces read so far, then the rest
    as they come, to the view (which takes up to DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    from chatproject.asgi import application

    user, raw = await _owner()
    room = await _room(user)
    content = "hi " * 10
    padding = "" if size == "small" else "x" * 1_200_000  # an unknown field: DRF ignores it, as the path does
    body = json.dumps({"content": content, "model": MODEL, "padding": padding}).encode()
    response = await asgi_request(application, "POST", f"/api/v1/chat/sessions/{room.pk}/messages", body,
                                  bearer(raw) | {"content-type": "application/json"}, chunk_size=64 * 1024 if
                                  size == "large" else 7)
    assert response.status == 200 and parse_sse(response.body.decode())[-1][0] == "done"
    assert fast_starts == ([str(room.pk)] if size == "small" else [])
    stored = await sync_to_async(Message.objects.filter(room=room, role="user").get)()
    assert stored.content == content


async def test_a_fast_start_is_one_atomic_block_on_the_database_thread():
    """Authentication, throttles and the start's rows share one atomic block: in a batch of starts that is
    one savepoint (two statements) a start, not one around the call and another around the send."""
    user, raw = await _owner()
    rooms = [await _room(user) for _ in range(3)]

    def as_one_batch():
        calls = [(sse_asgi.send_as_token_holder,
                  {"raw_token": raw, "client": sse_asgi.ClientAddress("127.0.0.1", None), "room": room.pk,
                   "content": "hi", "model": MODEL}) for room in rooms]
        with CaptureQueriesContext(connection) as queries:
            outcomes = broadcast._run_batch(calls)
        return outcomes, [query["sql"] for query in queries.captured_queries]

    outcomes, statements = await sync_to_async(as_one_batch)()
    assert [ok for ok, _value, _messages in outcomes] == [True, True, True]
    assert {str(value.user_message.room_id) for _ok, value, _messages in outcomes} == {str(r.pk) for r in rooms}
    savepoints = [sql for sql in statements if sql.upper().startswith("SAVEPOINT")]
    assert len(savepoints) == 3
