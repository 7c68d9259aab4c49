from django.apps import AppConfig


class ModelsMgmtConfig(AppConfig):
    name = "models_mgmt"
    verbose_name = "Model management"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from models_mgmt import keeper
        from models_mgmt.registry import registry

        registry.on_use.append(keeper.ensure_started)
