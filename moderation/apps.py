from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "moderation"
    verbose_name = "Moderation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.conf import settings

        from moderation import (
            checks,  # noqa: F401  (registers the start-up checks)
            media,
        )
        from moderation.login_throttle import record_lockout

        user_locked_out.connect(record_lockout, dispatch_uid="veil-audit-lockout")
        from config.memory import return_large_buffers_to_the_os

        return_large_buffers_to_the_os()  # decoded rasters are freed back to the OS, not kept per thread
        media.DECODES.budget_bytes = int(settings.VEIL_DECODE_BUDGET_MIB) * 1024 * 1024
        media.DECODES.wait_seconds = float(settings.VEIL_DECODE_WAIT_SECONDS)
