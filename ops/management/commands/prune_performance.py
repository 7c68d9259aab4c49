"""Housekeeping: delete performance and system samples past PERFORMANCE_RETENTION_DAYS (run from cron)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from ops.performance import prune_samples


class Command(BaseCommand):
    help = "Delete performance and system samples older than PERFORMANCE_RETENTION_DAYS (0 keeps them)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.PERFORMANCE_RETENTION_DAYS)

    def handle(self, *args, days: int, **options):
        deleted = prune_samples(days=days)
        self.stdout.write(
            f"removed {deleted['performance_samples']} performance samples and {deleted['system_samples']} "
            "system samples"
        )
