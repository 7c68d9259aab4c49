"""Writes for accounts and teams: registration, tokens, password and email flows, membership changes."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from rest_framework import exceptions, status

from accounts import selectors
from accounts.models import ApiToken, Membership, Role, Team, TeamInvite, User, WaitlistEntry, hash_secret
from chatproject.errors import ApiError, Conflict

EMAIL_VERIFY_SALT = "accounts.email-verify"


def _validate_password(password: str, user: User | None = None) -> None:
    """Run Django's password validators and report failures as a 400 on the password field."""
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise exceptions.ValidationError({"password": list(exc.messages)}) from exc


def _email_taken(email: str, exclude_pk: int | None = None) -> bool:
    qs = User.objects.filter(email__iexact=email)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    return qs.exists()


def _find_invite(raw_token: str) -> TeamInvite:
    """A pending, unexpired invite for the raw token, or a 400."""
    invite = TeamInvite.objects.select_related("team").filter(token_hash=hash_secret(raw_token)).first()
    max_age = timedelta(seconds=settings.TEAM_INVITE_MAX_AGE)
    if invite is None or invite.accepted_at is not None or invite.created_at + max_age < timezone.now():
        raise ApiError("This invite is invalid, used or expired.", code="invalid_invite")
    return invite


@transaction.atomic
def register_user(*, username: str, email: str, password: str, invite_token: str = "") -> tuple[User, str]:
    """Create an account; the very first one founds the default team and runs the instance."""
    is_first_user = not User.objects.exists()
    invite = _find_invite(invite_token) if invite_token else None
    mode = settings.SIGNUP_MODE
    if not is_first_user and invite is None and mode != "open":
        hint = "join the waitlist" if mode == "waitlist" else "ask a team admin for an invite"
        raise ApiError(f"Sign-up is closed; {hint}.", code="signup_closed", status_code=status.HTTP_403_FORBIDDEN)
    if invite is not None and invite.email.lower() != email.lower():
        raise ApiError("This invite was sent to a different email address.", code="invalid_invite")
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict("That username is taken.", code="username_taken")
    if _email_taken(email):
        raise Conflict("An account with that email already exists.", code="email_taken")
    candidate = User(username=username, email=email)
    _validate_password(password, candidate)
    candidate.set_password(password)
    if is_first_user:
        candidate.is_staff = True
        candidate.is_superuser = True
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError as exc:
        raise Conflict("That username or email is taken.", code="account_exists") from exc
    user = candidate

    if is_first_user:
        team = Team.objects.create(name=settings.DEFAULT_TEAM_NAME, is_default=True, created_by=user)
        Membership.objects.create(team=team, user=user, role=Role.FOUNDER)
    elif invite is not None:
        Membership.objects.create(team=invite.team, user=user, role=invite.role)
        invite.accepted_at = timezone.now()
        invite.save(update_fields=["accepted_at"])
        user.email_verified = True  # the invite mail reached this address, which proves it
        user.save(update_fields=["email_verified"])
    elif settings.DEFAULT_TEAM_AUTO_JOIN:
        default_team = Team.objects.filter(is_default=True).first()
        if default_team is not None:
            Membership.objects.create(team=default_team, user=user, role=Role.MEMBER)

    _token, raw = issue_sign_in_token(user=user, name="sign-up")
    if not user.email_verified:
        transaction.on_commit(lambda: send_verification_email(user=user))
    return user, raw


class TooManyLoginFailures(ApiError):
    """429 for an account after too many failed logins; `wait` becomes the Retry-After header."""

    def __init__(self, wait: int):
        super().__init__(
            f"Too many failed sign-ins for this account; try again in {wait} seconds.",
            code="too_many_login_failures",
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            details={"retry_after": wait},
        )
        self.wait = wait


def _login_failure_keys(identifier: str, user: User | None) -> tuple[str, str]:
    """Cache keys counting one account's failed logins: by user when the name or email is known (so both
    count together), else by the name tried (so unknown names behave like known ones)."""
    if user is not None:
        subject = f"user:{user.pk}"
    else:
        subject = "name:" + hashlib.sha256(identifier.strip().lower().encode()).hexdigest()
    return f"login-failures:{subject}:count", f"login-failures:{subject}:since"


def _login_locked_for(keys: tuple[str, str]) -> int:
    """Seconds until this account may try again (0: it may now)."""
    limit = settings.LOGIN_FAILURES_PER_ACCOUNT
    if limit <= 0:
        return 0
    count_key, since_key = keys
    values = cache.get_many([count_key, since_key])
    if values.get(count_key, 0) < limit:
        return 0
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    since = values.get(since_key)
    remaining = window if since is None else since + window - time.time()
    return max(1, math.ceil(remaining)) if remaining > 0 else 0  # a key can outlive its window by a moment


def _record_login_failure(keys: tuple[str, str]) -> None:
    """Count a failed login; the window starts at the first failure and lasts LOGIN_FAILURE_WINDOW_SECONDS."""
    count_key, since_key = keys
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    if cache.add(count_key, 1, timeout=window):
        cache.set(since_key, time.time(), timeout=window)
        return
    try:
        cache.incr(count_key)
    except ValueError:  # expired between add and incr: a new window
        cache.set(count_key, 1, timeout=window)
        cache.set(since_key, time.time(), timeout=window)


def authenticate_credentials(*, identifier: str, password: str) -> User:
    """Check a username-or-email and password; one vague message so accounts cannot be probed.

    After LOGIN_FAILURES_PER_ACCOUNT failures for one account within LOGIN_FAILURE_WINDOW_SECONDS, from
    whatever addresses, further attempts get 429 until the window ends; a successful login clears the count.
    """
    user = User.objects.filter(username__iexact=identifier).first()
    if user is None and "@" in identifier:
        user = User.objects.filter(email__iexact=identifier).first()
    keys = _login_failure_keys(identifier, user)
    wait = _login_locked_for(keys)
    if wait:
        raise TooManyLoginFailures(wait)
    if user is None or not user.check_password(password):
        _record_login_failure(keys)
        raise ApiError("Wrong username/email or password.", code="invalid_credentials", status_code=401)
    if not user.is_active:
        raise ApiError("This account is deactivated.", code="account_inactive", status_code=403)
    cache.delete_many(list(keys))
    return user


@transaction.atomic
def create_api_token(*, user: User, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Issue a Bearer token; the raw value is returned once and only its hash is stored."""
    raw = ApiToken.generate_raw()
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    token = ApiToken.objects.create(
        user=user, name=name, key_hash=hash_secret(raw), key_prefix=raw[:10], expires_at=expires_at
    )
    return token, raw


@transaction.atomic
def issue_sign_in_token(*, user: User, name: str) -> tuple[ApiToken, str]:
    """The token sign-up and login answer with: it expires after SIGN_IN_TOKEN_DAYS, and the user's expired
    tokens are dropped as it is made, so logging in again and again leaves no trail of live tokens."""
    ApiToken.objects.filter(user=user, expires_at__lte=timezone.now()).delete()
    return create_api_token(user=user, name=name, expires_in_days=settings.SIGN_IN_TOKEN_DAYS or None)


@transaction.atomic
def revoke_api_token(*, token: ApiToken) -> None:
    """Revoking deletes the row, so the hash can never authenticate again."""
    token.delete()


def request_password_reset(*, email: str) -> None:
    """Email a signed reset link if the account exists; the caller learns nothing either way."""
    user = User.objects.filter(email__iexact=email, is_active=True).first()
    if user is None or not user.has_usable_password():
        return
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    link = f"{settings.PUBLIC_BASE_URL}/accounts/reset/{uid}/{token}/"
    send_mail(
        subject="Reset your password",
        message=(
            f"Hello {user.username},\n\nOpen this link to choose a new password:\n{link}\n\n"
            f"Or send uid={uid} and token={token} to POST /api/v1/auth/password/reset/confirm.\n"
            "If you did not ask for this, ignore this email."
        ),
        from_email=None,
        recipient_list=[user.email],
    )


@transaction.atomic
def confirm_password_reset(*, uid: str, token: str, new_password: str) -> User:
    """Set a new password from a reset link; the link dies with the old password hash."""
    try:
        user = User.objects.get(pk=force_str(urlsafe_base64_decode(uid)))
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        user = None
    if user is None or not default_token_generator.check_token(user, token):
        raise ApiError("This reset link is invalid or has expired.", code="invalid_token")
    _validate_password(new_password, user)
    user.set_password(new_password)
    user.save(update_fields=["password"])
    ApiToken.objects.filter(user=user).delete()  # a reset means the old credentials may be compromised
    return user


def make_email_verification_token(user: User) -> str:
    return signing.dumps({"uid": user.pk, "email": user.email.lower()}, salt=EMAIL_VERIFY_SALT)


def send_verification_email(*, user: User) -> None:
    """Mail a signed link that proves the user owns the address."""
    if not user.email:
        return
    token = make_email_verification_token(user)
    link = f"{settings.PUBLIC_BASE_URL}/accounts/verify-email/{token}/"
    send_mail(
        subject="Confirm your email address",
        message=f"Hello {user.username},\n\nConfirm your email address by opening:\n{link}\n",
        from_email=None,
        recipient_list=[user.email],
    )


@transaction.atomic
def verify_email(*, token: str) -> User:
    """Mark the address verified if the signed token is good, fresh and still matches the account."""
    try:
        payload = signing.loads(token, salt=EMAIL_VERIFY_SALT, max_age=settings.EMAIL_VERIFICATION_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise ApiError("This verification link has expired.", code="token_expired") from exc
    except signing.BadSignature as exc:
        raise ApiError("This verification link is invalid.", code="invalid_token") from exc
    user = User.objects.filter(pk=payload.get("uid")).first()
    if user is None or user.email.lower() != payload.get("email"):
        raise ApiError("This verification link is invalid.", code="invalid_token")
    if not user.email_verified:
        user.email_verified = True
        user.save(update_fields=["email_verified"])
    return user


@transaction.atomic
def delete_account(*, user: User, password: str) -> None:
    """Delete a user with their rooms and messages; a team they founded passes to the next in line."""
    if not user.check_password(password):
        raise ApiError("Password is incorrect.", code="invalid_credentials", status_code=403)
    for membership in Membership.objects.filter(user=user, role=Role.FOUNDER).select_related("team"):
        team = membership.team
        others = team.memberships.exclude(user=user)
        if not others.exists():
            team.delete()
            continue
        if not others.filter(role=Role.FOUNDER).exists():
            heir = others.filter(role=Role.ADMIN).first() or others.first()
            heir.role = Role.FOUNDER
            heir.save(update_fields=["role"])
    user.delete()


@transaction.atomic
def join_waitlist(*, email: str, name: str = "", note: str = "") -> WaitlistEntry:
    """Record interest while sign-up is closed; joining twice is harmless."""
    if settings.SIGNUP_MODE != "waitlist":
        raise Conflict("The waitlist is not in use on this server.", code="waitlist_closed")
    if _email_taken(email):
        raise Conflict("An account with that email already exists.", code="email_taken")
    entry, _created = WaitlistEntry.objects.get_or_create(
        email=email.lower(), defaults={"name": name, "note": note}
    )
    return entry


# --- teams ---------------------------------------------------------------------------------------


@transaction.atomic
def create_team(*, user: User, name: str) -> Team:
    """The creator founds the team."""
    team = Team.objects.create(name=name, created_by=user)
    Membership.objects.create(team=team, user=user, role=Role.FOUNDER)
    return team


def _require_manager(team: Team, actor: User) -> Membership:
    membership = Membership.objects.filter(team=team, user=actor).first()
    if membership is None or not membership.can_manage_members:
        raise exceptions.PermissionDenied("Only team admins and founders manage members.")
    return membership


@transaction.atomic
def invite_member(*, team: Team, actor: User, identifier: str, role: str) -> tuple[Membership | None, str]:
    """Add an existing user at once, or email an invite to an address with no account yet.

    Returns (membership, "") for an existing user or (None, raw_invite_token) for an emailed invite.
    """
    actor_membership = _require_manager(team, actor)
    if role == Role.FOUNDER and actor_membership.role != Role.FOUNDER:
        raise exceptions.PermissionDenied("Only a founder can make someone a founder.")
    user = User.objects.filter(username__iexact=identifier).first()
    if user is None and "@" in identifier:
        user = User.objects.filter(email__iexact=identifier).first()
    if user is not None:
        if Membership.objects.filter(team=team, user=user).exists():
            raise Conflict("That user is already a member of this team.", code="already_member")
        return Membership.objects.create(team=team, user=user, role=role), ""
    if "@" not in identifier:
        raise exceptions.NotFound("No user with that username; invite by email instead.")
    raw = secrets.token_urlsafe(24)
    TeamInvite.objects.create(team=team, email=identifier, role=role, token_hash=hash_secret(raw), invited_by=actor)
    WaitlistEntry.objects.filter(email__iexact=identifier).update(invited=True)
    link = f"{settings.PUBLIC_BASE_URL}/signup/?invite={raw}"

    def _send() -> None:
        send_mail(
            subject=f"You are invited to {team.name}",
            message=f"{actor.username} invited you to the team {team.name}.\nSign up here: {link}\n",
            from_email=None,
            recipient_list=[identifier],
        )

    transaction.on_commit(_send)
    return None, raw


@transaction.atomic
def update_member_role(*, membership: Membership, actor: User, role: str) -> Membership:
    """Admins move people between member and admin; only founders touch the founder role."""
    actor_membership = _require_manager(membership.team, actor)
    touches_founder = role == Role.FOUNDER or membership.role == Role.FOUNDER
    if touches_founder and actor_membership.role != Role.FOUNDER:
        raise exceptions.PermissionDenied("Only a founder can grant or remove the founder role.")
    if membership.role == Role.FOUNDER and role != Role.FOUNDER:
        _ensure_other_founder(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


def _ensure_other_founder(membership: Membership) -> None:
    others = Membership.objects.filter(team=membership.team, role=Role.FOUNDER).exclude(pk=membership.pk)
    if not others.exists():
        raise Conflict("A team needs at least one founder.", code="last_founder")


@transaction.atomic
def remove_member(*, membership: Membership, actor: User) -> None:
    """Admins remove members, anyone may leave; the member's rooms leave the team with them."""
    if membership.user_id != actor.pk:
        actor_membership = _require_manager(membership.team, actor)
        if membership.role == Role.FOUNDER and actor_membership.role != Role.FOUNDER:
            raise exceptions.PermissionDenied("Only a founder can remove a founder.")
    if membership.role == Role.FOUNDER:
        _ensure_other_founder(membership)
    from chat.models import Room  # local import: chat depends on accounts, not the reverse

    Room.objects.filter(owner_id=membership.user_id, team_id=membership.team_id).update(team=None)
    membership.delete()


@transaction.atomic
def admin_update_user(*, actor: User, user: User, changes: dict) -> User:
    """Staff activate, deactivate and promote users; every change is audited."""
    from ops.services import record_audit_event

    if user.pk == actor.pk and changes.get("is_active") is False:
        raise Conflict("You cannot deactivate yourself.", code="self_deactivation")
    if user.pk == actor.pk and changes.get("is_staff") is False:
        raise Conflict("You cannot remove your own staff rights.", code="self_demotion")
    if user.is_superuser and not actor.is_superuser:
        raise exceptions.PermissionDenied("Only a superuser can change a superuser.")
    fields = [name for name in ("is_active", "is_staff") if name in changes and changes[name] != getattr(user, name)]
    before = {field: getattr(user, field) for field in fields}
    for field in fields:
        setattr(user, field, changes[field])
    if fields:
        user.save(update_fields=fields)
        if "is_active" in fields and not user.is_active:
            ApiToken.objects.filter(user=user).delete()
        record_audit_event(
            actor=actor,
            action="user.update",
            target=f"user:{user.pk}",
            details={"before": before, "after": {field: changes[field] for field in fields}},
        )
    return user


# --- the settings page ------------------------------------------------------------------------------


@transaction.atomic
def update_profile(
    *, user: User, email: str | None = None, first_name: str | None = None, last_name: str | None = None
) -> User:
    """Change the editable profile fields; a new email address must be free and is verified again."""
    fields: list[str] = []
    if email is not None and email.lower() != user.email.lower():
        if _email_taken(email, exclude_pk=user.pk):
            raise exceptions.ValidationError({"email": ["Another account uses this email address."]})
        user.email, user.email_verified = email, False
        fields += ["email", "email_verified"]
        transaction.on_commit(lambda: send_verification_email(user=user))
    for name, value in (("first_name", first_name), ("last_name", last_name)):
        if value is not None:
            setattr(user, name, value.strip())
            fields.append(name)
    if fields:
        try:
            with transaction.atomic():
                user.save(update_fields=fields)
        except IntegrityError as exc:
            raise exceptions.ValidationError({"email": ["Another account uses this email address."]}) from exc
    return user


@transaction.atomic
def change_password(
    *, user: User, current_password: str, new_password: str, revoke_tokens: bool = False,
    keep_token: ApiToken | None = None,
) -> int:
    """Set a new password after checking the current one; returns how many API tokens were revoked.

    Other browser sessions end by themselves (Django ties each session to the password hash); API tokens stay
    valid unless `revoke_tokens`, in which case all but `keep_token` (the one making this call) go.
    """
    if not user.check_password(current_password):
        raise exceptions.ValidationError({"current_password": ["This is not your current password."]})
    try:
        password_validation.validate_password(new_password, user=user)
    except DjangoValidationError as exc:
        raise exceptions.ValidationError({"new_password": list(exc.messages)}) from exc
    user.set_password(new_password)
    user.save(update_fields=["password"])
    if not revoke_tokens:
        return 0
    tokens = ApiToken.objects.filter(user=user)
    if keep_token is not None:
        tokens = tokens.exclude(pk=keep_token.pk)
    revoked = tokens.count()
    tokens.delete()
    return revoked


@transaction.atomic
def update_preferences(*, user: User, changes: dict) -> dict:
    """Merge validated changes into the stored preferences; a generation value of None means the server's."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    merged = selectors.preferences_of(locked)
    generation = {**merged["generation"], **changes.get("generation", {})}
    merged.update({key: value for key, value in changes.items() if key != "generation"})
    merged["generation"] = generation
    locked.preferences = merged
    locked.save(update_fields=["preferences"])
    user.preferences = merged
    return merged
