from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from intake import hashlists
from intake.hashlist_services import LIST_NAME, hash_list_import
from intake.models import HashList
from review.models import Queue


class Command(BaseCommand):
    help = (
        "Import a hash list file (threatexchange dataset CSV, '<signal_type> <signal>' lines, or Veil's pHash "
        "CSV) into a named list. Any bad line refuses the whole file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--list", required=True, dest="name", help="List name: A-Z, 0-9 and _ (as in HMA).")
        parser.add_argument("--label", help="What the list is (required when the list is new).")
        parser.add_argument("--action", choices=[a.value for a in HashList.Action], help="On a match (new list).")
        parser.add_argument("--queue", help="Specialist queue slug for --action route.")
        parser.add_argument("--format", choices=hashlists.FORMATS, default=None)
        parser.add_argument("--skip-unsupported", action="store_true",
                            help="Count and skip rows of signal types Veil does not match (e.g. video_md5).")

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"]
        if not LIST_NAME.match(name):
            raise CommandError(f"List name {name!r} must use only A-Z, 0-9 and _ (like HMA bank names).")
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        hash_list = HashList.objects.filter(name=name).first()
        if hash_list is None:
            if not options["label"] or not options["action"]:
                raise CommandError(f"List {name} is new: give --label and --action.")
            queue = None
            if options["action"] == HashList.Action.ROUTE:
                queue = Queue.objects.filter(slug=options["queue"] or "").first()
                if queue is None:
                    raise CommandError("--action route needs --queue with the slug of an existing queue.")
            hash_list = HashList.objects.create(name=name, label=options["label"], action=options["action"],
                                                target_queue=queue)
        try:
            result = hash_list_import(hash_list=hash_list, data=path.read_bytes(), actor=None,
                                      format=options["format"], skip_unsupported=options["skip_unsupported"])
        except hashlists.HashListError as exc:
            raise CommandError(f"{path} was not imported, nothing was stored:\n{exc.describe()}") from None
        self.stdout.write(f"{name}: {result.summary}; {result.added} added, {result.already_present} already there.")
