from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """An item's review: queues, claims (the lease, stored once), reveals, decisions, the console and its API. Its
    tables keep the label they were created under ("review_queue"; not "queue", which would shadow the standard
    library's queue module that Celery, kombu and Channels import)."""

    name = "review"
    label = "review_queue"
    verbose_name = "Review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from review import receivers

        receivers.connect()
