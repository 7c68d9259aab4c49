"""Mark replies left `streaming` by dead workers as `interrupted` (also runs when a worker starts)."""

from django.core.management.base import BaseCommand

from chat.streaming import recover_interrupted_streams


class Command(BaseCommand):
    help = "Mark replies left streaming by a dead worker as interrupted."

    def handle(self, *args, **options):
        self.stdout.write(f"recovered {recover_interrupted_streams()} interrupted replies")
