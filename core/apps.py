from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every part of Veil stands on: errors, the audit log, roles, realtime pushes, API keys and errors,
    languages, and the start-up checks. It imports no other Veil app."""

    name = "core"
    label = "core"
    verbose_name = "Core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        from core import checks  # noqa: F401  (registers the start-up checks)
        from core.login_throttle import record_lockout

        user_locked_out.connect(record_lockout, dispatch_uid="veil-audit-lockout")
