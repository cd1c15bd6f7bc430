"""Hash lists in the formats moderation teams already exchange: parse, validate and write them.

Pure Python (no Django): the service layer stores what `parse` returns and matches against it at ingest.

Formats (names as `detect_format` returns them):

``te_csv``
    python-threatexchange's dataset CSV (``threatexchange dataset -P --csv``). Header
    ``signal_type,signal_str,collab,category,tags``; tags are space-separated. Older releases of the tool wrote the
    same five columns as ``collab,signal_type,signal_str,category,tags``, so any order of exactly those five column
    names is read; we always write the current order, CRLF-terminated as the tool's own ``csv.DictWriter`` does.
``te_simple``
    ``<signal_type> <signal>`` per line; blank lines and whole-line ``#`` comments are allowed.
``veil_phash_csv``
    Veil's own pHash list: header ``phash,category,tags``, phash = 16 lowercase hex characters (imagehash's
    64-bit pHash as ``str(imagehash.phash(img))`` prints it). It has no collab column: writing drops ``collab``.

Rules shared by every format:

* A byte-order mark, CRLF or CR line endings and whitespace around fields are accepted. Signal types are read
  case-insensitively and hashes are lower-cased, so the normalised ``HashEntry.signal`` is always lowercase hex.
* All or nothing: if any line is bad, `parse` raises `HashListError` listing the first `MAX_REPORTED_ERRORS`
  line errors plus the total, and returns nothing.
* Signal types: ``pdq``, ``phash``, ``video_md5`` (32 hex characters, the MD5 of a video file) and ``vpdq`` (a JSON
  list of ``"pdq_hex,quality,timestamp"`` per hashed frame, as python-threatexchange writes it).
* A signal type other than those (``url``, ...) is a line error, unless the caller passes
  ``skip_unsupported=True``: those rows are then counted in ``ParseResult.skipped`` / ``skipped_types``.
* A repeated (signal_type, signal) is collapsed: the first row wins and ``ParseResult.duplicates`` counts the rest.
  (The dataset CSV repeats a hash once per collaboration that holds it; Veil lists hold each hash once.)
* More than ``max_entries`` data rows (skipped rows excluded) stops the parse at the first row over the limit.
* Spreadsheet formula injection: when writing CSV, a collab, category or tag starting with ``= + - @`` (after any
  run of single quotes) gets one leading single quote; reading CSV removes it again, so exports round-trip exactly
  while a spreadsheet shows text rather than evaluating a formula.

`HashEntry` validates itself on construction, so every entry can be written in a format that holds its type, and
``parse(dump_x(entries)).entries == entries`` for entries that `parse` produced (``line`` is not compared).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from PIL import Image

SIGNAL_TYPES: Final = ("pdq", "phash", "video_md5", "vpdq")
SIGNAL_HEX_LENGTHS: Final[Mapping[str, int]] = {"pdq": 64, "phash": 16, "video_md5": 32}
# vpdq (threatexchange's VideoVPDQSignal): a JSON list of "pdq_hex,quality,timestamp" strings, one per hashed frame.
# Normalised to lowercase hex, timestamps with 3 decimals, and JSON without spaces (so te_simple's one-space
# "<signal_type> <signal>" line still holds it).
VPDQ_MAX_FRAMES: Final = 100_000
FORMATS: Final = ("te_csv", "te_simple", "veil_phash_csv")
TE_CSV_COLUMNS: Final = ("signal_type", "signal_str", "collab", "category", "tags")
VEIL_PHASH_COLUMNS: Final = ("phash", "category", "tags")

# HMA / python-threatexchange: distance <= 31 is a match; hashes of quality < 50 are too unreliable to match on.
PDQ_MATCH_THRESHOLD: Final = 31
PDQ_MIN_QUALITY: Final = 50

DEFAULT_MAX_ENTRIES: Final = 1_000_000
MAX_REPORTED_ERRORS: Final = 50

_HEX_DIGITS = frozenset("0123456789abcdef")
_VALID_SIGNAL = {name: re.compile(f"[0-9a-f]{{{length}}}") for name, length in SIGNAL_HEX_LENGTHS.items()}
_VPDQ_FEATURE = re.compile(r"([0-9a-f]{64}),(\d{1,3}),(\d+(?:\.\d+)?)")
_VALID_TAG = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]+")  # \s also covers U+2028/U+2029
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_FORMULA = re.compile(r"'*[=+\-@]")  # a value a spreadsheet would evaluate, possibly already neutralised
_NEUTRALISED = re.compile(r"'+[=+\-@]")
_FORMULA_STARTS = frozenset("'=+-@")
_LINE = re.compile(r"([^\r\n]*)(?:\r\n|\r|\n|$)")
_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
_SHOWN_CHARS = 80


@dataclass(frozen=True, slots=True)
class HashEntry:
    """One hash in a list. Construction validates: ``signal`` must already be normalised (see `normalise_signal`)."""

    signal_type: str
    signal: str
    category: str = ""
    tags: tuple[str, ...] = ()
    collab: str = ""
    line: int = field(default=0, compare=False)  # 1-based source line, for messages; not part of identity

    def __post_init__(self) -> None:
        if not isinstance(self.tags, tuple):
            object.__setattr__(self, "tags", tuple(self.tags))
        # The common case (a valid entry) costs a few C-level matches: lists run to a million entries.
        valid = _VALID_SIGNAL.get(self.signal_type)
        if self.signal_type == "vpdq":
            if normalise_vpdq(self.signal) != self.signal:
                raise ValueError("vpdq signal is not in its normal form (see normalise_signal)")
        elif valid is None or not valid.fullmatch(self.signal):
            raise ValueError(self._signal_problem())
        problem = (self.collab and _text_problem("collab", self.collab)) or (
            self.category and _text_problem("category", self.category)
        )
        if problem:
            raise ValueError(problem)
        for tag in self.tags:
            if not _VALID_TAG.fullmatch(tag):
                raise ValueError(f"tag {_show(tag)} is empty or contains whitespace (tags are space-separated)")

    def _signal_problem(self) -> str:
        if self.signal_type not in SIGNAL_TYPES:
            return _unsupported(self.signal_type)
        if self.signal != self.signal.lower():
            return f"{self.signal_type} hash {_show(self.signal)} is not lowercase"
        return _signal_problem(self.signal_type, self.signal) or f"invalid {self.signal_type} hash"

    @property
    def key(self) -> tuple[str, str]:
        """What makes two entries duplicates of each other."""
        return (self.signal_type, self.signal)


@dataclass(frozen=True)
class LineError:
    line: int  # 1-based; 0 when the problem is the file as a whole
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class HashListError(ValueError):
    """The text is not a valid hash list. ``errors`` holds at most `MAX_REPORTED_ERRORS`; ``total`` counts all."""

    def __init__(self, errors: Sequence[LineError], total: int | None = None) -> None:
        self.errors: list[LineError] = list(errors)
        self.total: int = max(total or 0, len(self.errors))
        super().__init__(self.describe())

    def describe(self) -> str:
        head = "1 problem" if self.total == 1 else f"{self.total:,} problems"
        lines = [f"{head} in the hash list:", *(f"  {error}" for error in self.errors)]
        if self.total > len(self.errors):
            lines.append(f"  … and {self.total - len(self.errors):,} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class ParseResult:
    """What `parse` found. Iterating yields the entries; ``len()`` is their number."""

    entries: tuple[HashEntry, ...]
    format: str
    duplicates: int = 0  # rows collapsed into an earlier row with the same (signal_type, signal)
    skipped: int = 0  # rows of unsupported signal types (only with skip_unsupported=True)
    skipped_types: Mapping[str, int] = field(default_factory=dict)  # signal_type -> rows skipped

    def __iter__(self) -> Iterator[HashEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def summary(self) -> str:
        """E.g. ``"3 entries (1 duplicate collapsed, 2 skipped (video_md5: 2))"``, for a flash message."""
        parts = []
        if self.duplicates:
            parts.append(f"{self.duplicates:,} duplicate{'s' * (self.duplicates != 1)} collapsed")
        if self.skipped:
            kinds = ", ".join(f"{name}: {count:,}" for name, count in sorted(self.skipped_types.items()))
            parts.append(f"{self.skipped:,} skipped ({kinds})")
        count = len(self.entries)
        text = f"{count:,} entr{'y' if count == 1 else 'ies'}"
        return f"{text} ({', '.join(parts)})" if parts else text


# --- validation ----------------------------------------------------------------------------------------------


def normalise_vpdq(value: str) -> str:
    """The normal form of a vpdq signal; ValueError naming the problem otherwise."""
    try:
        features = json.loads(value)
    except ValueError:
        raise ValueError(f"vpdq signal {_show(value)} is not JSON (a list of \"pdq_hex,quality,timestamp\")") from None
    if not isinstance(features, list) or not features:
        raise ValueError("a vpdq signal is a non-empty JSON list of \"pdq_hex,quality,timestamp\" strings")
    if len(features) > VPDQ_MAX_FRAMES:
        raise ValueError(f"a vpdq signal of {len(features):,} frames is more than the {VPDQ_MAX_FRAMES:,} accepted")
    normal = []
    for number, feature in enumerate(features, 1):
        match = _VPDQ_FEATURE.fullmatch(str(feature).strip().lower()) if isinstance(feature, str) else None
        if match is None or int(match.group(2)) > 100:
            raise ValueError(f"vpdq frame {number} ({_show(str(feature))}) is not \"pdq_hex,quality,timestamp\" (64 "
                             "hex characters, a quality from 0 to 100, seconds)")
        normal.append(f"{match.group(1)},{int(match.group(2))},{float(match.group(3)):.3f}")
    return json.dumps(normal, separators=(",", ":"))


def vpdq_frames(signal: str) -> list[tuple[str, int, float]]:
    """(pdq_hex, quality, seconds) of each frame of a normalised vpdq signal."""
    found = []
    for feature in json.loads(signal):
        pdq, quality, seconds = feature.split(",")
        found.append((pdq, int(quality), float(seconds)))
    return found


def to_vpdq(frames: Iterable[tuple[str, int, float]]) -> str:
    """A vpdq signal (normalised) from (pdq_hex, quality, seconds) per hashed frame."""
    return normalise_vpdq(json.dumps([f"{pdq},{quality},{seconds:.3f}" for pdq, quality, seconds in frames]))


def normalise_signal(signal_type: str, value: str) -> str:
    """The canonical form of a hash (lowercase hex, exact length); `ValueError` naming the problem otherwise."""
    if signal_type == "vpdq":
        return normalise_vpdq(value.strip())
    valid = _VALID_SIGNAL.get(signal_type)
    if valid is None:
        raise ValueError(_unsupported(signal_type))
    signal = value.strip().lower()
    if not valid.fullmatch(signal):
        raise ValueError(_signal_problem(signal_type, value.strip()) or f"invalid {signal_type} hash")
    return signal


def _signal_problem(signal_type: str, signal: str) -> str | None:
    """What is wrong with a hash, in words; only called once it is known to be wrong (so it may be slow)."""
    length = SIGNAL_HEX_LENGTHS[signal_type]
    if not signal:
        return f"missing {signal_type} hash"
    bad = next((char for char in signal.lower() if char not in _HEX_DIGITS), None)
    if bad is not None:
        return f"{signal_type} hash {_show(signal)} is not hexadecimal (contains {bad!r})"
    if len(signal) != length:
        return f"{signal_type} hash {_show(signal)} has {len(signal)} hex characters; a {signal_type} hash has {length}"
    return None


def _unsupported(signal_type: str) -> str:
    if not signal_type:
        return "missing signal type"
    return (f"unsupported signal type {_show(signal_type)} (Veil matches {', '.join(SIGNAL_TYPES[:-1])} and "
            f"{SIGNAL_TYPES[-1]})")


def _text_problem(name: str, value: str) -> str | None:
    if _CONTROL.search(value):
        return f"{name} {_show(value)} contains a control character or line break"
    if value != value.strip():
        return f"{name} {_show(value)} has leading or trailing whitespace"
    return None


def _show(value: str) -> str:
    return repr(value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…")


# --- formula neutralisation ----------------------------------------------------------------------------------


def neutralise_formula(value: str) -> str:
    """Prefix one single quote to a value a spreadsheet would evaluate (``= + - @``, after any leading quotes)."""
    return "'" + value if value[:1] in _FORMULA_STARTS and _FORMULA.match(value) else value


def restore_formula(value: str) -> str:
    """Undo `neutralise_formula` (the inverse on every string)."""
    return value[1:] if value[:1] == "'" and _NEUTRALISED.match(value) else value


# --- parsing -------------------------------------------------------------------------------------------------


class _Collector:
    """Accumulates entries and line errors for one parse; enforces the entry limit as rows arrive."""

    def __init__(self, *, max_entries: int, skip_unsupported: bool) -> None:
        self.max_entries = max_entries
        self.skip_unsupported = skip_unsupported
        self.entries: dict[tuple[str, str], HashEntry] = {}
        self.rows = 0
        self.duplicates = 0
        self.skipped: Counter[str] = Counter()
        self.errors: list[LineError] = []
        self.error_count = 0
        self._strings: dict[str, str] = {}  # one copy of each collab/category/tag: lists repeat them on every row

    def _shared(self, value: str) -> str:
        return self._strings.setdefault(value, value)

    def error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LineError(line, message))

    def add(
        self, line: int, signal_type: str, signal: str, *, category: str = "", tags: str = "", collab: str = ""
    ) -> None:
        signal_type = signal_type.strip().lower()
        if signal_type and signal_type not in SIGNAL_TYPES and self.skip_unsupported:
            self.skipped[signal_type] += 1
            return
        self.rows += 1
        if self.rows > self.max_entries:
            limit = LineError(line, f"more than {self.max_entries:,} entries (the limit); split the file")
            raise HashListError([limit, *self.errors][:MAX_REPORTED_ERRORS], self.error_count + 1)
        if signal_type not in SIGNAL_TYPES:
            self.error(line, _unsupported(signal_type))
            return
        try:
            normalised = normalise_signal(signal_type, signal)
            entry = HashEntry(
                signal_type,
                normalised,
                category=self._shared(restore_formula(category.strip())),
                tags=tuple(self._shared(restore_formula(tag)) for tag in tags.split()),
                collab=self._shared(restore_formula(collab.strip())),
                line=line,
            )
        except ValueError as problem:
            self.error(line, str(problem))
            return
        if entry.key in self.entries:
            self.duplicates += 1
        else:
            self.entries[entry.key] = entry

    def result(self, fmt: str) -> ParseResult:
        if self.error_count:
            raise HashListError(self.errors, self.error_count)
        if not self.entries:
            skipped = f" ({sum(self.skipped.values()):,} of unsupported signal types skipped)" if self.skipped else ""
            raise HashListError([LineError(0, f"the file has no entries{skipped}")])
        return ParseResult(
            entries=tuple(self.entries.values()),
            format=fmt,
            duplicates=self.duplicates,
            skipped=sum(self.skipped.values()),
            skipped_types=dict(self.skipped),
        )


def parse(
    text: str,
    *,
    format: str | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    skip_unsupported: bool = False,
) -> ParseResult:
    """Parse a whole hash list, or raise `HashListError` (nothing half-imported). ``format`` None: detect it."""
    if max_entries < 1:
        raise ValueError("max_entries must be at least 1")
    text = text.removeprefix("\ufeff")
    fmt = detect_format(text) if format is None else format
    collector = _Collector(max_entries=max_entries, skip_unsupported=skip_unsupported)
    if fmt == "te_simple":
        _parse_te_simple(text, collector)
    elif fmt == "te_csv":
        _parse_csv(text, collector, TE_CSV_COLUMNS)
    elif fmt == "veil_phash_csv":
        _parse_csv(text, collector, VEIL_PHASH_COLUMNS)
    else:
        raise ValueError(f"unknown hash-list format {format!r}; expected one of {', '.join(FORMATS)}")
    return collector.result(fmt)


def _meaningful_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based number, stripped text) of each line that is not blank or a ``#`` comment; lazily, line by line."""
    position, number = 0, 0
    while position < len(text):
        match = _LINE.match(text, position)
        assert match is not None  # the pattern matches at every position
        position, number = match.end(), number + 1
        line = match.group(1).strip()
        if line and not line.startswith("#"):
            yield number, line


def _parse_te_simple(text: str, collector: _Collector) -> None:
    for number, line in _meaningful_lines(text):
        parts = line.split()
        if len(parts) != 2:
            collector.error(number, f"expected '<signal_type> <signal>', found {_show(line)}")
            continue
        collector.add(number, parts[0], parts[1])


def _parse_csv(text: str, collector: _Collector, columns: tuple[str, ...]) -> None:
    # Lines are cut lazily rather than through io.StringIO, which would copy the text at 4 bytes a character.
    lines = (match.group() for match in _PHYSICAL_LINE.finditer(text))
    reader = csv.reader(lines, strict=True)
    names: list[str] | None = None
    start = 1
    try:
        for row in reader:
            fields = [value.strip() for value in row]
            line, start = start, reader.line_num + 1
            if not any(fields):
                continue
            if names is None:
                names = _header_names(fields, columns)
                if names is None:
                    collector.error(line, f"expected the header {','.join(columns)!r}, found {_show(','.join(row))}")
                    return
                continue
            if len(fields) != len(columns):
                collector.error(line, f"expected {len(columns)} comma-separated fields, found {len(fields)}")
                continue
            record = dict(zip(names, fields, strict=True))
            collector.add(
                line,
                record.get("signal_type", "phash"),  # a Veil pHash CSV holds nothing else
                record.get("signal_str", record.get("phash", "")),
                category=record["category"],
                tags=record["tags"],
                collab=record.get("collab", ""),
            )
    except csv.Error as problem:  # malformed quoting or an oversized field: the rest of the file can't be trusted
        collector.error(start, f"malformed CSV ({problem})")


def _header_names(fields: list[str], columns: tuple[str, ...]) -> list[str] | None:
    names = [name.lower() for name in fields]
    if names == list(columns):
        return names
    # Older python-threatexchange releases wrote the dataset CSV's columns in another order.
    return names if columns == TE_CSV_COLUMNS and sorted(names) == sorted(columns) else None


def detect_format(text: str) -> str:
    """``"te_csv"``, ``"te_simple"`` or ``"veil_phash_csv"``, from the first line that is not blank or a comment."""
    text = text.removeprefix("\ufeff")
    first = next(_meaningful_lines(text), None)
    if first is None:
        raise HashListError([LineError(0, "the file has no entries")])
    number, line = first
    names = [name.strip().lower() for name in next(csv.reader([line]), [])]
    if "signal_str" in names or names[:1] == ["signal_type"]:
        return "te_csv"
    if names[:1] == ["phash"]:
        return "veil_phash_csv"
    if "," not in line and len(line.split()) >= 2:  # parse names a line with too many words precisely
        return "te_simple"
    if line.lower().startswith("vpdq ") and len(line.split()) == 2:  # a vpdq signal has commas inside its JSON
        return "te_simple"
    raise HashListError(
        [
            LineError(
                number,
                f"cannot tell the hash-list format from {_show(line)}: expected a threatexchange dataset CSV "
                f"(header {','.join(TE_CSV_COLUMNS)!r}), a threatexchange simple file ('<signal_type> <signal>' "
                f"per line) or a Veil pHash CSV (header {','.join(VEIL_PHASH_COLUMNS)!r})",
            )
        ]
    )


def decode(data: bytes) -> str:
    """Decode an uploaded file (UTF-8, with or without a BOM); `HashListError` naming the line if it isn't UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as problem:
        line = data.count(b"\n", 0, problem.start) + 1
        raise HashListError([LineError(line, f"not UTF-8 text (byte {data[problem.start]:#04x})")]) from None


# --- writing -------------------------------------------------------------------------------------------------


def dump_te_csv(entries: Iterable[HashEntry]) -> str:
    """python-threatexchange dataset CSV, exactly as ``threatexchange dataset -P --csv`` writes it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(TE_CSV_COLUMNS)
    for entry in entries:
        writer.writerow(
            [
                entry.signal_type,
                entry.signal,
                neutralise_formula(entry.collab),
                neutralise_formula(entry.category),
                _dump_tags(entry.tags),
            ]
        )
    return buffer.getvalue()


def dump_te_simple(entries: Iterable[HashEntry]) -> str:
    """``<signal_type> <signal>`` per line (collab, category and tags are not part of this format)."""
    return "".join(f"{entry.signal_type} {entry.signal}\n" for entry in entries)


def dump_veil_phash_csv(entries: Iterable[HashEntry]) -> str:
    """Veil's pHash CSV. Only phash entries fit; a pdq entry is a `ValueError`. ``collab`` is not kept."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(VEIL_PHASH_COLUMNS)
    for entry in entries:
        if entry.signal_type != "phash":
            raise ValueError(f"a Veil pHash CSV holds only phash entries, not {entry.signal_type} {entry.signal}")
        writer.writerow([entry.signal, neutralise_formula(entry.category), _dump_tags(entry.tags)])
    return buffer.getvalue()


def _dump_tags(tags: tuple[str, ...]) -> str:
    return " ".join(neutralise_formula(tag) for tag in tags)


# --- PDQ -----------------------------------------------------------------------------------------------------


def pdq_of(image: Image.Image) -> tuple[str, int]:
    """(64-hex PDQ hash, quality 0-100) of the pixels as given, the same hex python-threatexchange produces.

    Apply EXIF orientation first if the image may carry it. A quality below `PDQ_MIN_QUALITY` means the hash is too
    unreliable to match on (flat or nearly featureless images).
    """
    import numpy as np
    import pdqhash  # compiled extension: imported here so parsing works where it isn't installed

    pixels = np.ascontiguousarray(np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8))
    bits, quality = pdqhash.compute(pixels)
    # pdqhash returns the bits most significant first; pack them into bytes in that order (as threatexchange does).
    signal = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()
    return signal, int(quality)


def pdq_distance(a: str, b: str) -> int:
    """Hamming distance between two PDQ hashes (either case); `ValueError` if either isn't one."""
    first, second = normalise_signal("pdq", a), normalise_signal("pdq", b)
    return (int(first, 16) ^ int(second, 16)).bit_count()


def pdq_matches(a: str, b: str, *, threshold: int = PDQ_MATCH_THRESHOLD) -> bool:
    """HMA's rule: a match is a distance of at most the threshold (31)."""
    return pdq_distance(a, b) <= threshold


# --- Veil pHash <-> the signed 64-bit integer the moderation models store ------------------------------------


def phash_from_int(value: int) -> str:
    """16 lowercase hex characters for a 64-bit pHash stored signed (PostgreSQL bigint) or unsigned."""
    if not -(1 << 63) <= value < (1 << 64):
        raise ValueError(f"{value} does not fit in 64 bits")
    return f"{value & ((1 << 64) - 1):016x}"


def phash_to_int(signal: str) -> int:
    """The signed 64-bit integer (as `intake.media.to_signed64` stores it) for a phash signal."""
    value = int(normalise_signal("phash", signal), 16)
    return value - (1 << 64) if value >> 63 else value
