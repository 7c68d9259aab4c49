"""Uploaded files leave storage with their rows, however the rows go (room, account, panic wipe)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from search.models import Attachment


@receiver(post_delete, sender=Attachment)
def remove_stored_file(*, instance: Attachment, **kwargs) -> None:
    """Delete the bytes once the deletion commits, so a rolled-back delete keeps its file."""
    name, storage = instance.file.name, instance.file.storage
    if name:
        transaction.on_commit(lambda: storage.delete(name))
