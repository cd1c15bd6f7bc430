from django.apps import AppConfig


class OversightConfig(AppConfig):
    """Team leads' live shift load and occupational health's reports, on top of everything else: they read,
    they never discipline (no ranking, no per-person throughput), and every health read is audited."""

    name = "oversight"
    label = "oversight"
    verbose_name = "Team leads and occupational health"
    default_auto_field = "django.db.models.BigAutoField"

