"""Pages reached from links in emails."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import APIException

from accounts.services import verify_email


def verify_email_page(request: HttpRequest, token: str) -> HttpResponse:
    """The link in the verification email lands here and shows the outcome."""
    try:
        user = verify_email(token=token)
    except APIException as exc:
        return render(request, "accounts/verify_email.html", {"ok": False, "message": str(exc.detail)}, status=400)
    return render(request, "accounts/verify_email.html", {"ok": True, "user": user})
