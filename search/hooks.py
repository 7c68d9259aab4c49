"""The calls chat's write services make so the index follows the conversation.

Additions are handed to the indexing thread once the transaction commits (never before: the thread could not
see the rows yet); removals happen in the caller's transaction, so no search ever returns deleted text.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from search.indexing import indexer
from search.models import Attachment, Document


def message_saved(message_id) -> None:
    """A user message was written, or a reply finished: index it in the background."""
    transaction.on_commit(lambda: indexer.enqueue_messages([message_id]))


def messages_removed(message_ids: Iterable) -> None:
    Document.objects.filter(message_id__in=list(message_ids)).delete()


def room_messages_cleared(room_id) -> None:
    Document.objects.filter(room_id=room_id, message__isnull=False).delete()


def room_removed(room_id) -> None:
    """A deleted room keeps nothing searchable: its rows, its files and their bytes go."""
    Document.objects.filter(room_id=room_id).delete()
    Attachment.objects.filter(room_id=room_id).delete()  # sends post_delete per row, which removes the bytes
