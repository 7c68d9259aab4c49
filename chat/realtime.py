"""Ends a login's open WebSockets when the login ends: sign-out, token revocation, deactivation, deletion.

Signal receivers, so the Django admin's edits count as much as the API's; each event goes to the user's
group once the change commits, and every worker's sockets of that user check it against their own login.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import ApiToken
from chat.broadcast import group_send_after_commit, user_group


def end_logins(*, user_id: int, token_id: int | None = None, session_key: str | None = None) -> None:
    """Tell the user's sockets that one login (a token, a session) or all of them (neither given) ended."""
    group_send_after_commit(
        user_group(user_id), {"type": "auth.ended", "token_id": token_id, "session_key": session_key}
    )


@receiver(user_logged_out, dispatch_uid="chat.realtime.logged_out")
def _on_logged_out(sender, request, user, **kwargs) -> None:
    if user is not None and request is not None and request.session.session_key:
        end_logins(user_id=user.pk, session_key=request.session.session_key)


@receiver(post_delete, sender=ApiToken, dispatch_uid="chat.realtime.token_deleted")
def _on_token_deleted(sender, instance: ApiToken, **kwargs) -> None:
    end_logins(user_id=instance.user_id, token_id=instance.pk)


@receiver(post_save, sender=get_user_model(), dispatch_uid="chat.realtime.user_saved")
def _on_user_saved(sender, instance, created: bool, **kwargs) -> None:
    if not created and not instance.is_active:
        end_logins(user_id=instance.pk)


@receiver(post_delete, sender=get_user_model(), dispatch_uid="chat.realtime.user_deleted")
def _on_user_deleted(sender, instance, **kwargs) -> None:
    end_logins(user_id=instance.pk)
