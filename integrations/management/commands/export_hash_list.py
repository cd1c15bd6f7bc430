from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from intake import hashlists
from intake.hashlist_services import hash_list_export
from intake.models import HashList


class Command(BaseCommand):
    help = "Write a hash list to stdout as threatexchange dataset CSV, simple lines, or Veil's pHash CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--format", choices=hashlists.FORMATS, default="te_csv")

    def handle(self, *args: Any, **options: Any) -> None:
        hash_list = HashList.objects.filter(name=options["name"]).first()
        if hash_list is None:
            raise CommandError(f"There is no hash list {options['name']!r}.")
        self.stdout.write(hash_list_export(hash_list=hash_list, format=options["format"]), ending="")
