from django.apps import AppConfig


class WellbeingConfig(AppConfig):
    name = "wellbeing"
    verbose_name = "Wellbeing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from wellbeing import health_access

        health_access.connect()  # every change of a team's OH staff is recorded (HealthAccessGrant)
