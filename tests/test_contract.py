"""The API contract: operation ids and tags, docs pages, the browsable API, errors and rate limits."""

from __future__ import annotations

import copy

import pytest
import yaml
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

SPEC_OPERATION_IDS = {
    # §3.1
    "auth_register", "auth_login", "auth_logout", "auth_me", "auth_tokens_list", "auth_token_create",
    "auth_token_revoke", "auth_password_reset_request", "auth_password_reset_confirm", "auth_email_verify",
    "auth_account_delete", "auth_waitlist_join", "teams_list", "teams_create", "team_members_list",
    "team_members_invite", "team_member_update", "team_member_remove", "admin_users_list", "admin_user_update",
    "admin_stats",
    # §3.2
    "rooms_list", "rooms_create", "rooms_get", "rooms_update", "rooms_delete", "rooms_history",
    "rooms_messages_clear", "rooms_fresh", "rooms_title_generate", "rooms_cleanup_empty", "rooms_export",
    "rooms_import", "projects_list", "projects_create", "projects_update", "projects_delete", "session_create",
    "session_get", "session_reset", "session_stop", "session_history_clear", "session_delete",
    # §3.3, the session rows
    "chat_sessions_create", "chat_sessions_list", "chat_sessions_get", "chat_sessions_delete",
}


def _spec_chat_operation_ids() -> set[str]:
    import re
    from pathlib import Path

    spec = Path(__file__).resolve().parents[2] / "shared" / "spec.md"
    return set(re.findall(r"\| (chat_[a-z_]+) \|", spec.read_text())) if spec.exists() else set()


@pytest.fixture
def schema(anon_client) -> dict:
    response = anon_client.get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def _operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_spec_operation_id_is_present_once(schema):
    ids = [op["operationId"] for _path, _method, op in _operations(schema)]
    assert len(ids) == len(set(ids))
    expected = SPEC_OPERATION_IDS | _spec_chat_operation_ids()  # every §3.3 row: built, or a documented 501
    assert expected <= set(ids), expected - set(ids)


PUBLIC_CHAT = {"chat_models_list", "chat_models_status", "chat_models_hot_slots", "chat_models_orchestrator",
               "chat_health_check", "chat_ollama_status"}


def test_chat_operations_are_tagged_chat_or_chat_public(schema):
    for _path, _method, op in _operations(schema):
        if op["operationId"].startswith("chat_"):
            expected = "chat-public" if op["operationId"] in PUBLIC_CHAT else "chat"
            assert op["tags"] == [expected], op["operationId"]


def test_bearer_security_scheme(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An API token from auth_login or auth_token_create.",
    }


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/", "/signin/"])
def test_doc_pages_render(anon_client, user, path):
    response = anon_client.get(path)  # with an account in place: a fresh install's /signin/ leads to sign-up
    assert response.status_code == 200
    assert b"<html" in response.content.lower()


def test_home_leads_to_sign_in_which_links_to_docs(user):
    response = Client().get("/", follow=True)
    assert response.redirect_chain[-1][0] == "/signin/"
    assert b'href="/api/docs/"' in response.content


def test_browsable_api_works_with_a_browser_session(user):
    browser = Client()
    assert browser.login(username=user.username, password=PASSWORD)
    response = browser.get("/api/v1/rooms/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"Rooms Api" in response.content or b"rooms" in response.content.lower()
    assert response["Content-Type"].startswith("text/html")


def test_session_writes_need_csrf(user):
    browser = Client(enforce_csrf_checks=True)
    browser.login(username=user.username, password=PASSWORD)
    response = browser.post("/api/v1/rooms/", {}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_unknown_api_path_is_json_404(anon_client):
    response = anon_client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "details": {}}}


def test_method_not_allowed_uses_error_shape(api):
    response = api.put("/api/v1/rooms/", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def _rates(settings, **rates):
    rest = copy.deepcopy(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"].update(rates)
    settings.REST_FRAMEWORK = rest


def test_per_user_throttle_with_retry_after(settings, user):
    _rates(settings, user="3/min")
    client = client_for(user)
    statuses = [client.get("/api/v1/rooms/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/rooms/")
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "throttled"
    # Another user from the same IP is not affected by the per-user limit.
    assert client_for(UserFactory()).get("/api/v1/rooms/").status_code == 200


def test_per_ip_throttle_spans_users_and_anonymous(settings, user):
    _rates(settings, ip="2/min")
    assert APIClient().post("/api/v1/auth/login", {"username": "x", "password": "y"}).status_code == 401
    assert client_for(user).get("/api/v1/rooms/").status_code == 200
    blocked = client_for(UserFactory()).get("/api/v1/rooms/")  # a different user, the same IP
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    other_ip = client_for(user)
    other_ip.defaults["REMOTE_ADDR"] = "10.9.9.9"
    assert other_ip.get("/api/v1/rooms/").status_code == 200


def test_login_has_a_tighter_throttle(settings, anon_client):
    _rates(settings, auth="2/min")
    bodies = [anon_client.post("/api/v1/auth/login", {"username": "x", "password": "y"}) for _ in range(3)]
    assert [b.status_code for b in bodies] == [401, 401, 429]


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_docs_assets_are_served_locally(anon_client, path):
    """The docs must work on a machine with no internet: no CDN script tags."""
    html = anon_client.get(path).content.decode()
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html
    assert "/static/drf_spectacular_sidecar/" in html


def test_unbuilt_chat_operations_answer_501(schema, api):
    from chat.not_built import NOT_BUILT

    documented = {op["operationId"]: op for _p, _m, op in _operations(schema)}
    for route, method, operation_id, is_public in NOT_BUILT:
        assert documented[operation_id]["tags"] == ["chat-public" if is_public else "chat"]
        url = "/api/v1/chat/" + route.replace("<int:slot_number>", "1").replace("<str:", "x").replace(">", "")
        response = getattr(APIClient() if is_public else api, method)(url)
        assert response.status_code == 501, (operation_id, response.content)
        assert response.json()["error"]["details"] == {"operation_id": operation_id}


COMPATIBLE_OPERATIONS = {
    "openai-compatible": {"openai_chat_completions", "openai_models_list", "openai_models_get",
                          "openai_embeddings"},
    "ollama-compatible": {"ollama_chat", "ollama_generate", "ollama_tags", "ollama_show", "ollama_ps",
                          "ollama_version", "ollama_embed"},
}


def test_compatible_apis_are_documented_under_their_own_tags(schema):
    for tag, operation_ids in COMPATIBLE_OPERATIONS.items():
        tagged = {op["operationId"] for _p, _m, op in _operations(schema) if op["tags"] == [tag]}
        assert tagged == operation_ids, tag
    assert APIClient().post("/v1/chat/completions").status_code == 401  # token auth applies


PAGED_LISTS = {
    "rooms_list", "rooms_history", "projects_list", "chat_sessions_list", "auth_tokens_list", "teams_list",
    "team_members_list", "admin_users_list",
}


def _operation(schema: dict, operation_id: str) -> dict:
    return next(op for _p, _m, op in _operations(schema) if op["operationId"] == operation_id)


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_paged_lists_are_documented_as_the_envelope_they_answer(schema, api):
    for operation_id in PAGED_LISTS:
        operation = _operation(schema, operation_id)
        body = _resolve(schema, operation["responses"]["200"]["content"]["application/json"]["schema"])
        assert body["type"] == "object", operation_id
        assert {"count", "next", "previous", "results"} <= set(body["properties"]), operation_id
        assert body["properties"]["results"]["type"] == "array", operation_id
        assert {"limit", "offset"} <= {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    # ...which is what the endpoint sends.
    assert set(api.get("/api/v1/rooms/").json()) == {"count", "next", "previous", "results"}


def _documents_error_envelope(schema: dict, response: dict) -> bool:
    envelope = _resolve(schema, response["content"]["application/json"]["schema"])
    body = _resolve(schema, envelope["properties"]["error"])
    return envelope["required"] == ["error"] and set(body["required"]) == {"code", "message", "details"}


def test_errors_are_documented_in_the_envelope(schema, anon_client, api):
    rooms_get = _operation(schema, "rooms_get")
    for code in ("401", "403", "404", "429"):
        assert _documents_error_envelope(schema, rooms_get["responses"][code]), code
    assert "400" not in rooms_get["responses"]  # a read without parameters cannot be invalid
    rooms_create = _operation(schema, "rooms_create")
    for code in ("400", "401", "409", "413", "429"):
        assert _documents_error_envelope(schema, rooms_create["responses"][code]), code
    assert "404" not in rooms_create["responses"]
    assert "Retry-After" in rooms_create["responses"]["429"]["headers"]
    login = _operation(schema, "auth_login")  # public: no 401 for a missing login, but its own 401
    assert "invalid_credentials" in login["responses"]["401"]["description"]
    register = _operation(schema, "auth_register")
    assert "401" not in register["responses"] and _documents_error_envelope(schema, register["responses"]["409"])
    # The documented shape is the one sent.
    assert set(anon_client.get("/api/v1/rooms/00000000-0000-0000-0000-000000000000").json()["error"]) == {
        "code", "message", "details"}
    assert api.get("/api/v1/rooms/00000000-0000-0000-0000-000000000000").json()["error"]["code"] == "not_found"


def test_schema_generation_is_clean():
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_the_sse_start_documents_its_event_stream_and_refusals(schema):
    operation = next(op for methods in schema["paths"].values() for op in methods.values()
                     if isinstance(op, dict) and op.get("operationId") == "chat_messages_send")
    stream = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert stream == {"$ref": "#/components/schemas/ChatStreamEvent"}
    events = schema["components"]["schemas"]["ChatStreamEvent"]["oneOf"]
    assert len(events) == 4  # start, token, done, error
    for status in ("400", "401", "404", "409", "429", "503"):
        assert "application/json" in operation["responses"][status]["content"], status
