from django.apps import AppConfig


class WellbeingConfig(AppConfig):
    name = "wellbeing"
    verbose_name = "Wellbeing"
    default_auto_field = "django.db.models.BigAutoField"
