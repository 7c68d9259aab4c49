from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Search, files and RAG"

    def ready(self) -> None:
        from search import signals  # noqa: F401 - connects the file clean-up receivers
