"""`manage.py cluster_images DIR [--json]`: group the images of a folder into near-duplicate clusters, offline.

Runs the same engine as the matching worker, with the same thresholds (settings.VEIL_NEARDUP_THRESHOLDS
overrides the documented defaults of intake.neardup.Thresholds), on the same rendition: every file goes
through media.make_derivatives and the engine sees its display rendition. Nothing is written to the database
or to disk.
Files with identical bytes join as "identical-file"; the others join when verify() accepts an index candidate.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from PIL import Image

from intake import media, neardup


@dataclass
class Edge:
    file: str  # the file that joined...
    joined: str  # ...this earlier file
    distance: int  # key distance in bits (0 for identical files)
    method: str
    detail: str


@dataclass
class Clustering:
    files: list[str] = field(default_factory=list)  # fingerprinted (or identical to one that was), in order
    edges: list[Edge] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    parent: dict[str, str] = field(default_factory=dict)
    sha: dict[str, str] = field(default_factory=dict)  # file -> SHA-256 of its bytes
    fingerprints: dict[str, neardup.Fingerprint] = field(default_factory=dict)  # files that were fingerprinted

    def find(self, name: str) -> str:
        root = name
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(name, name) != root:  # path compression
            self.parent[name], name = root, self.parent[name]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            first, second = sorted((ra, rb), key=self.files.index)
            self.parent[second] = first

    def path(self, a: str, b: str) -> list[Edge]:
        """The matches that connect a and b (breadth-first over the edges), empty if they are not connected."""
        links: dict[str, list[tuple[str, Edge]]] = {}
        for e in self.edges:
            links.setdefault(e.file, []).append((e.joined, e))
            links.setdefault(e.joined, []).append((e.file, e))
        previous: dict[str, tuple[str, Edge] | None] = {a: None}
        frontier = [a]
        while frontier and b not in previous:
            step = []
            for node in frontier:
                for other, e in links.get(node, []):
                    if other not in previous:
                        previous[other] = (node, e)
                        step.append(other)
            frontier = step
        if b not in previous or a == b:
            return []
        out = []
        node = b
        while (link := previous[node]) is not None:
            node, e = link
            out.append(e)
        return out[::-1]

    def clusters(self) -> list[list[str]]:
        groups: dict[str, list[str]] = {}
        for name in self.files:
            groups.setdefault(self.find(name), []).append(name)
        return [members for members in groups.values() if len(members) > 1]


def thresholds_from_settings() -> neardup.Thresholds:
    return neardup.Thresholds.from_mapping(getattr(settings, "VEIL_NEARDUP_THRESHOLDS", None))


def cluster_folder(root: Path, *, recursive: bool = False,
                   thresholds: neardup.Thresholds | None = None) -> Clustering:
    matcher = neardup.Matcher(thresholds or thresholds_from_settings())
    result = Clustering()
    by_sha: dict[str, str] = {}
    names: list[str] = []
    pattern = "**/*" if recursive else "*"
    paths = sorted(p for p in root.glob(pattern) if p.is_file() and not p.is_symlink()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    for path in paths:
        name = path.relative_to(root).as_posix()
        try:
            data = path.read_bytes()
        except OSError as exc:
            result.skipped.append((name, f"unreadable: {exc.strerror or exc}"))
            continue
        sha = hashlib.sha256(data).hexdigest()
        result.sha[name] = sha
        if sha in by_sha:
            result.files.append(name)
            result.edges.append(Edge(name, by_sha[sha], 0, "identical-file", "same bytes (SHA-256)"))
            result.union(name, by_sha[sha])
            continue
        try:
            derived = media.make_derivatives(io.BytesIO(data), display_max_side=settings.VEIL_DISPLAY_MAX_SIDE,
                                             max_pixels=settings.VEIL_MAX_PIXELS)
        except media.UnsafeImage as exc:
            result.skipped.append((name, f"{exc.code}: {exc.detail}"))
            continue
        display = getattr(derived, "display_image", None)  # what the ingest service fingerprints
        if display is None:
            with Image.open(io.BytesIO(derived.display)) as decoded:
                display = decoded.convert("RGB")
        fp = neardup.fingerprint(display)
        result.fingerprints[name] = fp
        by_sha[sha] = name
        result.files.append(name)
        index = len(names)
        for other, found in matcher.match(fp):
            result.edges.append(Edge(name, names[other], found.distance, found.method, found.detail))
            result.union(name, names[other])
        names.append(name)
        matcher.add(index, fp)
    return result


class Command(BaseCommand):
    help = (
        "Group the images in DIR into near-duplicate clusters with the same engine and thresholds as the matching "
        "worker, and print each cluster with the matches that joined it. Read-only: no database writes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", metavar="DIR", help="Folder of images.")
        parser.add_argument("--json", action="store_true", help="Print one JSON document instead of text.")
        parser.add_argument("--recursive", action="store_true", help="Also look in subfolders.")
        parser.add_argument("--explain", nargs=2, metavar=("A", "B"),
                            help="Explain why files A and B (paths relative to DIR) were or were not joined.")

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["directory"]).expanduser()
        if not root.is_dir():
            raise CommandError(f"{root} is not a directory.")
        thresholds = thresholds_from_settings()
        result = cluster_folder(root, recursive=bool(options["recursive"]), thresholds=thresholds)
        if options["explain"]:
            self.explain(result, *options["explain"], thresholds=thresholds, as_json=bool(options["json"]))
            return
        clusters = result.clusters()
        clustered = {name for members in clusters for name in members}
        if options["json"]:
            document = {
                "clusters": [
                    {"files": members,
                     "matches": [asdict(e) for e in result.edges if e.file in members]}
                    for members in clusters
                ],
                "singletons": [name for name in result.files if name not in clustered],
                "skipped": [{"file": name, "reason": reason} for name, reason in result.skipped],
                "thresholds": asdict(thresholds),
            }
            self.stdout.write(json.dumps(document, indent=2))
            return
        for number, members in enumerate(clusters, start=1):
            self.stdout.write(self.style.MIGRATE_HEADING(f"Cluster {number} ({len(members)} files)"))
            for name in members:
                joins = [e for e in result.edges if e.file == name]
                if not joins:
                    self.stdout.write(f"  {name}")
                for e in joins:
                    self.stdout.write(f"  {name}  ~ {e.joined}: {e.method}, {e.distance} bits ({e.detail})")
        singles = len(result.files) - len(clustered)
        self.stdout.write(f"{len(result.files)} image(s): {len(clusters)} cluster(s) of near-duplicates, "
                          f"{singles} without a duplicate.")
        if result.skipped:
            self.stdout.write("Skipped:")
            for name, reason in result.skipped:
                self.stdout.write(f"  {name}: {reason}")

    def explain(self, result: Clustering, a: str, b: str, *, thresholds: neardup.Thresholds, as_json: bool) -> None:
        skipped = dict(result.skipped)
        for name in (a, b):
            if name in skipped:
                raise CommandError(f"{name} was skipped: {skipped[name]}")
            if name not in result.files:
                raise CommandError(f"{name} is not an image file of this folder (give its path relative to DIR).")
        lines: list[str] = []
        joined = result.find(a) == result.find(b)
        path = result.path(a, b)
        if a == b:
            lines.append("the same file")
        elif result.sha[a] == result.sha[b]:
            lines.append("identical bytes (SHA-256): joined without looking at pixels")
        else:
            # The later file is the one that was looked up against the earlier, as when clustering.
            first, second = sorted((a, b), key=result.files.index)
            fa = result.fingerprints.get(first) or next(
                fp for n, fp in result.fingerprints.items() if result.sha[n] == result.sha[first])
            fb = result.fingerprints.get(second) or next(
                fp for n, fp in result.fingerprints.items() if result.sha[n] == result.sha[second])
            lines.append(f"{second} looked up against {first}:")
            lines.extend("  " + line for line in neardup.explain(fb, fa, thresholds))
        if joined and len(path) > 1:
            lines.append("joined through other files: " + "; ".join(
                f"{e.file} ~ {e.joined} ({e.method}, {e.distance} bits)" for e in path))
        lines.append(f"{a} and {b} are {'in the same cluster' if joined else 'NOT in the same cluster'}.")
        if as_json:
            self.stdout.write(json.dumps({"a": a, "b": b, "joined": joined, "path": [asdict(e) for e in path],
                                          "explanation": lines}, indent=2))
            return
        for line in lines:
            self.stdout.write(line)
