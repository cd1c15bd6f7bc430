from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo users, queues and content for `make run` (seed_demo, demo_feed, review_workload)."""

    name = "demo"
    label = "demo"
    verbose_name = "Demo"
