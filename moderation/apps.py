from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "moderation"
    verbose_name = "Moderation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        from moderation import checks  # noqa: F401  (registers the start-up checks)
        from moderation.login_throttle import record_lockout

        user_locked_out.connect(record_lockout, dispatch_uid="veil-audit-lockout")
