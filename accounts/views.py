"""Server-rendered account pages; they call the same services as the API."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import APIException

from accounts import services
from accounts.forms import PasswordResetForm, SignInForm, SignUpForm, WaitlistForm
from accounts.models import User

BACKEND = "django.contrib.auth.backends.ModelBackend"


def _attach_errors(form: forms.Form, exc: APIException) -> str:
    """Put each field's errors next to that field; what belongs to no field comes back as text."""
    detail = exc.detail
    if not isinstance(detail, dict):
        return str(detail)
    rest = {}
    for key, value in detail.items():
        if key in form.fields:
            for item in value if isinstance(value, list) else [value]:
                form.add_error(key, str(item))
        else:
            rest[key] = value
    return _error_text(APIException(rest)) if rest else ""


def _error_text(exc: APIException) -> str:
    detail = exc.detail
    if isinstance(detail, dict):
        items = (value if isinstance(value, list) else [value] for value in detail.values())
        return " ".join(str(item) for group in items for item in group)
    return str(detail)


@require_http_methods(["GET", "POST"])
def signin_page(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat")
    if request.method == "GET" and not User.objects.exists():
        return redirect("signup")  # a fresh install has nobody to sign in: its first visitor creates the owner
    form = SignInForm(request.POST or None)
    error = ""
    retry_after = None
    if request.method == "POST" and form.is_valid():
        try:
            user = services.authenticate_credentials(
                identifier=form.cleaned_data["username"], password=form.cleaned_data["password"]
            )
        except services.TooManyLoginFailures as exc:
            error, retry_after = _error_text(exc), exc.wait
        except APIException as exc:
            error = _error_text(exc)
        else:
            login(request, user, backend=BACKEND)
            target = request.GET.get("next", "")
            return redirect(target if target.startswith("/") and not target.startswith("//") else "chat")
    status = 429 if retry_after else 400 if error else 200
    response = render(request, "accounts/signin.html", {"form": form, "error": error}, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


@require_http_methods(["GET", "POST"])
def signup_page(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat")
    invite = request.GET.get("invite", "")
    closed = settings.SIGNUP_MODE != "open" and not invite and User.objects.exists()
    if closed and settings.SIGNUP_MODE == "waitlist":
        return waitlist_page(request)
    form = SignUpForm(request.POST or None, initial={"invite_token": invite})
    error = ""
    failed = False
    if closed:
        error = "Sign-up is by invitation only. Ask a team admin for an invite link."
    elif request.method == "POST" and form.is_valid():
        try:
            user, _token = services.register_user(**form.cleaned_data)
        except APIException as exc:
            error = _attach_errors(form, exc)
            failed = True
        else:
            login(request, user, backend=BACKEND)
            return redirect("chat")
    context = {"form": form, "error": error, "closed": closed, "first_account": not User.objects.exists()}
    return render(request, "accounts/signup.html", context,
                  status=400 if (error or failed) and request.method == "POST" else 200)


def waitlist_page(request: HttpRequest) -> HttpResponse:
    form = WaitlistForm(request.POST or None)
    joined = False
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            services.join_waitlist(**form.cleaned_data)
            joined = True
        except APIException as exc:
            error = _error_text(exc)
    return render(request, "accounts/waitlist.html", {"form": form, "joined": joined, "error": error})


@require_http_methods(["GET", "POST"])
def password_reset_page(request: HttpRequest) -> HttpResponse:
    form = PasswordResetForm(request.POST or None)
    sent = False
    if request.method == "POST" and form.is_valid():
        services.request_password_reset(email=form.cleaned_data["email"])
        sent = True
    return render(request, "accounts/password_reset.html", {"form": form, "sent": sent})


@require_POST
def signout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("signin")


def verify_email_page(request: HttpRequest, token: str) -> HttpResponse:
    """The link in the verification email lands here and shows the outcome."""
    try:
        user = services.verify_email(token=token)
    except APIException as exc:
        return render(request, "accounts/verify_email.html", {"ok": False, "message": str(exc.detail)}, status=400)
    return render(request, "accounts/verify_email.html", {"ok": True, "user": user})
