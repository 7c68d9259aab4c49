"""Files in rooms: accepted kinds are extracted, chunked, embedded and searchable; refused ones leave nothing."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chat import services as chat_services
from search.models import Attachment, Document
from tests.conftest import client_for
from tests.factories import RoomFactory
from tests.search.conftest import stored_files
from tests.search.pdfs import pdf_with_pages

pytestmark = pytest.mark.django_db

MARKDOWN = "# Deployment guide\n\nThe staging server runs on port 8443.\n\nRotate the TLS certificate every 90 days.\n"


@pytest.fixture
def room(user):
    return RoomFactory(owner=user)


def upload(client, room, name, data, content_type="application/octet-stream"):
    return client.post(f"/api/v1/chat/sessions/{room.pk}/upload",
                       {"file": SimpleUploadedFile(name, data, content_type=content_type)}, format="multipart")


@pytest.mark.parametrize("name, data, kind", [
    ("guide.md", MARKDOWN.encode(), "markdown"),
    ("notes.txt", b"Plain notes about the quarterly budget.", "text"),
    ("sort.py", b"def quicksort(items):\n    return sorted(items)\n", "code"),
    ("people.csv", b"name,city\nAda,London\nLinus,Helsinki\n", "csv"),
    ("config.json", json.dumps({"service": {"port": 8443, "region": "eu-west"}}).encode(), "json"),
    ("report.pdf", pdf_with_pages(["Quarterly revenue grew by twelve percent.", "Churn fell in the spring."]),
     "pdf"),
])
def test_accepted_files_are_chunked_embedded_and_stored(api, room, name, data, kind, _media_in_tmp):
    response = upload(api, room, name, data)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == kind and body["name"] == name and body["size"] == len(data)
    assert body["chunk_count"] >= 1 and body["indexed_chunks"] == body["chunk_count"]
    attachment = Attachment.objects.get(pk=body["id"])
    assert attachment.file.read() == data
    chunks = list(Document.objects.filter(attachment=attachment).order_by("ordinal"))
    assert all(chunk.vector is not None and chunk.role == "file" for chunk in chunks)
    if kind == "pdf":
        assert body["pages"] == 2 and [chunk.page for chunk in chunks] == [1, 2]
    else:
        assert chunks[0].line_start == 1


def test_an_uploaded_file_is_found_by_search_and_its_passage_opens(api, room):
    body = upload(api, room, "guide.md", MARKDOWN.encode()).json()
    hits = api.get("/api/v1/chat/search", {"q": "which port does staging use"}).json()["results"]
    assert hits[0]["kind"] == "chunk" and hits[0]["file"] == {"id": body["id"], "name": "guide.md"}
    assert hits[0]["link"] == f"/chat/{room.pk}/?file={body['id']}&chunk=0"
    passage = api.get(f"/api/v1/rooms/{room.pk}/files/{body['id']}/chunks/0").json()
    assert "8443" in passage["text"] and passage["line_start"] == 1
    listed = api.get(f"/api/v1/rooms/{room.pk}/files").json()
    assert [item["id"] for item in listed] == [body["id"]]
    content = api.get(f"/api/v1/rooms/{room.pk}/files/{body['id']}/content")
    assert b"".join(content.streaming_content) == MARKDOWN.encode()


@pytest.mark.parametrize("name, data, status, code", [
    ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, 415, "unsupported_file_type"),
    ("program.exe", b"MZ\x90\x00", 415, "unsupported_file_type"),
    ("fake.txt", b"text\x00with\x00NULs", 415, "unsupported_file_type"),
    ("fake.pdf", b"not a pdf at all", 415, "unsupported_file_type"),
    ("empty.txt", b"", 422, "no_text"),
    ("blank.md", b"   \n\n  ", 422, "no_text"),
    ("latin1.txt", "caf\xe9".encode("latin-1"), 422, "no_text"),
    ("scan.pdf", pdf_with_pages(["", ""]), 422, "no_text"),
    ("broken.pdf", b"%PDF-1.4\ngarbage", 422, "no_text"),
])
def test_refused_files_leave_nothing_behind(api, room, name, data, status, code, _media_in_tmp):
    response = upload(api, room, name, data)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert not Attachment.objects.exists() and not Document.objects.exists()
    assert stored_files(_media_in_tmp) == []


def test_oversize_is_413(api, room, settings, _media_in_tmp):
    settings.UPLOAD_MAX_BYTES = 1000
    response = upload(api, room, "big.txt", b"word " * 300)
    assert response.status_code == 413
    assert response.json()["error"]["details"]["limit"] == 1000
    assert not Attachment.objects.exists() and stored_files(_media_in_tmp) == []


def test_missing_file_field_is_400(api, room):
    response = api.post(f"/api/v1/chat/sessions/{room.pk}/upload", {}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["error"]["details"]


def test_scope_of_uploads_and_files(roles, room):
    data = MARKDOWN.encode()
    assert upload(client_for(roles["other_user"]), room, "x.md", data).status_code == 404
    assert upload(client_for(roles["founder"]), room, "x.md", data).status_code == 403
    file_id = upload(client_for(roles["owner"]), room, "guide.md", data).json()["id"]
    for who, expected in (("founder", 200), ("other_user", 404), ("team_admin", 404), ("other_team", 404)):
        client = client_for(roles[who])
        assert client.get(f"/api/v1/rooms/{room.pk}/files/{file_id}").status_code == expected
        assert client.get(f"/api/v1/rooms/{room.pk}/files/{file_id}/chunks/0").status_code == expected
        hits = client.get("/api/v1/chat/search", {"q": "staging server port"}).json()["results"]
        assert any(hit["file"] and hit["file"]["id"] == file_id for hit in hits) == (expected == 200)
    assert client_for(roles["founder"]).delete(f"/api/v1/rooms/{room.pk}/files/{file_id}").status_code == 403


def test_deleting_a_file_room_or_everything_removes_rows_and_bytes(api, user, room, _media_in_tmp,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = upload(api, room, "a.md", MARKDOWN.encode()).json()["id"]
        upload(api, room, "b.md", b"Second file about the release checklist.")
        other_room = RoomFactory(owner=user)
        upload(api, other_room, "c.md", b"Third file about onboarding.")
    assert len(stored_files(_media_in_tmp)) == 3
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/rooms/{room.pk}/files/{first}").status_code == 204
    assert len(stored_files(_media_in_tmp)) == 2 and not Document.objects.filter(attachment_id=first).exists()
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.soft_delete_room(room=room)
    assert len(stored_files(_media_in_tmp)) == 1
    hits = api.get("/api/v1/chat/search", {"q": "release checklist"}).json()["results"]
    assert hits and all(hit["room"]["id"] == str(other_room.pk) for hit in hits)
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.wipe_chat_data()
    assert stored_files(_media_in_tmp) == [] and not Document.objects.exists() and not Attachment.objects.exists()
