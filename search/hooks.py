"""The calls chat's write services make so the index follows the conversation.

Additions are handed to the indexing thread once the transaction commits (never before: the thread could not
see the rows yet); removals happen in the caller's transaction, so no search ever returns deleted text.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from chatproject.errors import ApiError
from search.indexing import BATCH_MESSAGES, indexer
from search.models import Attachment, Document

# Keys of a user message's metadata that shape its replies' retrieval; an edit of the message keeps them.
RETRIEVAL_KEYS = ("files", "search_all_rooms")


def retrieval_metadata(*, room_id, file_ids: Iterable, search_all_rooms: bool) -> dict:
    """What a user message keeps of its attached files (the room's own, else 404) and of a cross-room request."""
    wanted = list(dict.fromkeys(file_ids))
    found = dict(Attachment.objects.filter(room_id=room_id, pk__in=wanted).values_list("pk", "name"))
    missing = [str(pk) for pk in wanted if pk not in found]
    if missing:
        raise ApiError("No such file in this room.", code="file_not_found", status_code=404,
                       details={"files": missing})
    metadata: dict = {}
    if wanted:
        metadata["files"] = [{"id": str(pk), "name": found[pk]} for pk in wanted]
    if search_all_rooms:
        metadata["search_all_rooms"] = True
    return metadata


def message_saved(message_id) -> None:
    """A user message was written, or a reply finished: index it in the background."""
    transaction.on_commit(lambda: indexer.enqueue_messages([message_id]))


def messages_saved(message_ids: Iterable) -> None:
    """Many messages were written at once (an imported room): index them in the background, a batch at a time."""
    ids = [str(pk) for pk in message_ids]

    def hand_over() -> None:
        for first in range(0, len(ids), BATCH_MESSAGES):
            indexer.enqueue_messages(ids[first:first + BATCH_MESSAGES])

    if ids:
        transaction.on_commit(hand_over)


def messages_removed(message_ids: Iterable) -> None:
    Document.objects.filter(message_id__in=list(message_ids)).delete()


def room_messages_cleared(room_id) -> None:
    Document.objects.filter(room_id=room_id, message__isnull=False).delete()


def room_removed(room_id) -> None:
    """A deleted room keeps nothing searchable: its rows, its files and their bytes go."""
    Document.objects.filter(room_id=room_id).delete()
    Attachment.objects.filter(room_id=room_id).delete()  # sends post_delete per row, which removes the bytes
