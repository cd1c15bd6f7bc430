from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    """Veil and the systems around it: decision webhooks, outbound HTTP, the HMA-compatible and Coop-compatible
    APIs. It listens for decisions (intake.signals.decision_recorded); nothing below imports it."""

    name = "integrations"
    label = "integrations"
    verbose_name = "Integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations import receivers

        receivers.connect()
