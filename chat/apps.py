from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from chatproject.connections import close_request_thread_connections

        request_finished.connect(close_request_thread_connections, dispatch_uid="close_request_thread_connections")
