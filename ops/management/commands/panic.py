"""`manage.py panic trigger|status|reset`: the panic switch for when the web UI cannot be reached."""

from __future__ import annotations

import getpass
import json

from django.core.management.base import BaseCommand, CommandError

from ops import services
from ops.panic import panic_state
from ops.serializers import PanicStateSerializer


class Command(BaseCommand):
    help = "Trigger, inspect or reset the panic switch (audited as the operating-system user)."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        trigger = actions.add_parser("trigger", help="Stop every reply and refuse new chat work with 423.")
        trigger.add_argument("--reason", default="", help="Shown to users and kept in the audit trail.")
        trigger.add_argument("--wipe-data", action="store_true",
                             help="Also delete every room, message and file irrecoverably (asks to confirm).")
        trigger.add_argument("--yes", action="store_true", help="Do not ask before wiping.")
        trigger.add_argument("--unload-models", action="store_true",
                             help="Also free the models' memory (the Ollama servers'; local models live in the "
                                  "server processes and are unloaded by the API's trigger).")
        actions.add_parser("status", help="Print the switch's state as JSON.")
        actions.add_parser("reset", help="Let chat work through again.")

    def handle(self, *args, action: str, **options) -> None:
        actor_name = f"manage.py ({getpass.getuser()})"
        if action == "trigger":
            wipe = options["wipe_data"]
            if wipe and not options["yes"]:
                answer = input("Delete ALL rooms, messages and files of every user? Type 'wipe' to confirm: ")
                if answer.strip() != "wipe":
                    raise CommandError("Not confirmed; nothing was changed.")
            outcome = services.trigger_panic(actor=None, actor_name=actor_name, reason=options["reason"],
                                             wipe_data=wipe, unload_models=options["unload_models"])
            self.stdout.write(f"Panic is ON. Replies asked to stop: {outcome.streams_stopped}.")
            if wipe:
                self.stdout.write(f"Deleted: {json.dumps(outcome.deleted)}")
            if options["unload_models"]:
                self.stdout.write(f"Unloaded: {', '.join(outcome.unloaded) or 'nothing was loaded'}")
        elif action == "reset":
            services.reset_panic(actor=None, actor_name=actor_name)
            self.stdout.write("Panic is off; chat work is allowed again.")
        else:
            self.stdout.write(json.dumps(PanicStateSerializer(panic_state()).data, indent=2))
