from django.apps import AppConfig


class ReviewQueueConfig(AppConfig):
    # Not "queue": a top-level package of that name would shadow the standard library's queue module, which
    # Celery, kombu and Channels import.
    name = "review_queue"
    verbose_name = "Review queues"
    default_auto_field = "django.db.models.BigAutoField"
