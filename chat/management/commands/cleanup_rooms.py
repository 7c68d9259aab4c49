"""Housekeeping: drop long-idle empty rooms and expired chat sessions (run from cron or a worker)."""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from chat.services import cleanup_empty_rooms, delete_expired_sessions


class Command(BaseCommand):
    help = "Soft-delete empty rooms idle for INACTIVE_ROOM_DAYS and purge expired chat sessions."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.INACTIVE_ROOM_DAYS)

    def handle(self, *args, days: int, **options):
        rooms = cleanup_empty_rooms(older_than=timedelta(days=days), keep_newest=False)
        sessions = delete_expired_sessions()
        self.stdout.write(f"removed {rooms} empty rooms and {sessions} expired sessions")
