from django.apps import AppConfig


class IntakeConfig(AppConfig):
    """Items as they arrive: ingest, the processing pipeline, near-duplicate matching and hash lists, with the
    picture library (media, neardup, hashindex, hashlists, motion) inside it. Its tables keep the label they were
    created under ("moderation"), so the re-cut of issue 23 moved code, not data."""

    name = "intake"
    label = "moderation"
    verbose_name = "Intake"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from core import api_errors
        from core.memory import return_large_buffers_to_the_os
        from intake import checks, media  # noqa: F401  (checks registers the thresholds check)

        return_large_buffers_to_the_os()  # decoded rasters are freed back to the OS, not kept per thread
        media.DECODES.budget_bytes = int(settings.VEIL_DECODE_BUDGET_MIB) * 1024 * 1024
        media.DECODES.wait_seconds = float(settings.VEIL_DECODE_WAIT_SECONDS)
        api_errors.BUSY.append(media.DecodeBusy)  # the decode budget is full: 503 with Retry-After, not a 500
