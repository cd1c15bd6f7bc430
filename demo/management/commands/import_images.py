"""`manage.py import_images DIR --queue SLUG`: bring a folder of images into a queue through the normal ingest
service, so every file gets the same checks as an API upload. Safe to re-run: files already in the queue (same
SHA-256) are skipped, and a refused file is reported, never fatal."""

from __future__ import annotations

import hashlib
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from demo.management.commands.seed_demo import quiet_task_logs
from intake import media, services
from intake.models import Category, ContentItem, Severity
from review.models import Queue


@dataclass
class ImportReport:
    imported: list[int] = field(default_factory=list)  # item ids
    present: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


class Command(BaseCommand):
    help = (
        "Import the images in DIR into a queue. Each file goes through the same checks as an API upload; refused "
        "files are listed at the end, and files already in the queue (same SHA-256) are skipped. Each item's "
        "external id is the file's path relative to DIR, so decisions can be traced back to files."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", metavar="DIR", help="Folder of images to import.")
        parser.add_argument("--queue", required=True, metavar="SLUG", help="Slug of the queue to import into.")
        parser.add_argument("--severity", type=int, choices=Severity.values, default=Severity.NONE,
                            help="Severity for every imported item: 0 none, 1 low, 2 medium, 3 severe (default 0).")
        parser.add_argument("--category", choices=Category.values, default=Category.UNSPECIFIED,
                            help="Category for every imported item (default unspecified).")
        parser.add_argument("--recursive", action="store_true", help="Also import from subfolders.")
        parser.add_argument("--as", dest="as_user", metavar="USER",
                            help="Record this user as the submitter (default: none).")

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["directory"]).expanduser()
        if not root.is_dir():
            raise CommandError(f"{root} is not a directory.")
        queue = Queue.objects.filter(slug=options["queue"]).first()
        if queue is None:
            existing = ", ".join(Queue.objects.order_by("slug").values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"There is no queue {options['queue']!r} (existing queues: {existing}).")
        submitter = None
        if options["as_user"]:
            submitter = User.objects.filter(username=options["as_user"]).first()
            if submitter is None:
                raise CommandError(f"There is no user {options['as_user']!r} to submit as.")
        if not queue.is_active:
            self.stderr.write(f"Note: queue {queue.slug!r} is inactive; its items will wait until it is reopened.")

        files, skipped = _candidates(root, recursive=bool(options["recursive"]))
        report = ImportReport()
        progress = tqdm(files, desc=f"Importing into {queue.slug}", unit="file", file=_raw_stream(self.stderr),
                        disable=None, dynamic_ncols=True)
        with quiet_task_logs(enabled=int(options["verbosity"]) < 2):
            for path in progress:
                self._import_one(path, root=root, queue=queue, submitter=submitter, options=options, report=report)
        progress.close()
        self._print_report(report, queue=queue, skipped=skipped)

    def _import_one(self, path: Path, *, root: Path, queue: Queue, submitter: User | None, options: dict[str, Any],
                    report: ImportReport) -> None:
        name = path.relative_to(root).as_posix()
        try:
            with path.open("rb") as fp:
                size = os.fstat(fp.fileno()).st_size
                # Hash only what could be accepted: an oversized or empty file is refused by the ingest checks.
                if 0 < size <= settings.VEIL_MAX_UPLOAD_BYTES:
                    sha256 = _sha256(fp)
                    if ContentItem.objects.filter(queue=queue, sha256=sha256).exists():
                        report.present.append(name)
                        return
                item = services.item_ingest(
                    queue=queue,
                    upload=File(fp, name=path.name),
                    submitted_by=submitter,
                    external_id=name[-200:],
                    category=options["category"],
                    severity=int(options["severity"]),
                )
        except services.DuplicateSubmission:
            report.present.append(name)  # this account already imported a file of this name into this queue
        except media.UnsafeImage as exc:
            report.refused.append((name, f"{exc.code}: {exc.detail}"))
        except OSError as exc:
            report.refused.append((name, f"unreadable: {exc.strerror or exc}"))
        else:
            report.imported.append(item.pk)

    def _print_report(self, report: ImportReport, *, queue: Queue, skipped: Counter[str]) -> None:
        statuses = Counter(
            ContentItem.objects.filter(pk__in=report.imported).values_list("status", flat=True).iterator()
        )
        detail = ""
        if report.imported:
            ready = statuses.pop(ContentItem.Status.READY, 0)
            parts = [f"{ready} ready"]
            if statuses.get(ContentItem.Status.PROCESSING):
                parts.append(f"{statuses.pop(ContentItem.Status.PROCESSING)} still processing (a worker finishes them)")
            parts.extend(f"{count} {status}" for status, count in statuses.items())
            detail = f" ({', '.join(parts)})"
        style = self.style.WARNING if report.refused else self.style.SUCCESS
        self.stdout.write(style(
            f"Queue {queue.slug}: imported {len(report.imported)}{detail}, already present {len(report.present)}, "
            f"refused {len(report.refused)}."
        ))
        if report.refused:
            self.stdout.write("Refused files:")
            for name, reason in report.refused:
                self.stdout.write(f"  {name}: {reason}")
        notes = []
        if skipped["folders"]:
            notes.append(f"{skipped['folders']} subfolder(s) (use --recursive)")
        if skipped["hidden"]:
            notes.append(f"{skipped['hidden']} hidden file(s) or folder(s)")
        if skipped["special"]:
            notes.append(f"{skipped['special']} entry(ies) that are not regular files")
        if notes:
            self.stdout.write(f"Not looked at: {', '.join(notes)}.")


def _candidates(root: Path, *, recursive: bool) -> tuple[list[Path], Counter[str]]:
    """Regular files under root in a stable order, and counts of what was passed over. Symlinked folders are
    not followed, so an import cannot wander outside the folder it was given."""
    files: list[Path] = []
    skipped: Counter[str] = Counter()
    for folder, subfolders, names in os.walk(root, followlinks=False):
        base = Path(folder)
        kept = sorted(sub for sub in subfolders if not sub.startswith("."))
        skipped["hidden"] += len(subfolders) - len(kept)
        if recursive:
            subfolders[:] = kept
        else:
            skipped["folders"] += len(kept)
            subfolders[:] = []
        for filename in sorted(names):
            path = base / filename
            if filename.startswith("."):
                skipped["hidden"] += 1
            elif not path.is_file():  # sockets, FIFOs (opening one would block), broken links
                skipped["special"] += 1
            else:
                files.append(path)
    return files, skipped


def _sha256(fp: IO[bytes]) -> str:
    digest = hashlib.sha256()
    fp.seek(0)
    for chunk in iter(lambda: fp.read(1024 * 1024), b""):
        digest.update(chunk)
    fp.seek(0)
    return digest.hexdigest()


def _raw_stream(wrapper: Any) -> IO[str]:
    """tqdm redraws with carriage returns; Django's OutputWrapper would add a newline to each redraw."""
    stream: IO[str] = getattr(wrapper, "_out", sys.stderr)
    return stream
