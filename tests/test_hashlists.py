"""intake.hashlists: parsing, validation and writing of shared hash lists, and PDQ hashing. Pure Python: no DB."""

from __future__ import annotations

import csv
import io

import pytest
from PIL import Image, ImageDraw

from intake import hashlists
from intake.hashlists import (
    PDQ_MATCH_THRESHOLD,
    PDQ_MIN_QUALITY,
    HashEntry,
    HashListError,
    LineError,
    ParseResult,
    detect_format,
    dump_te_csv,
    dump_te_simple,
    dump_veil_phash_csv,
    parse,
    pdq_distance,
    pdq_of,
)

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"  # python-threatexchange's examples
PDQ_B = "e64cc9d91c623882f8d1f1d9a398e78c9f199b3bd83924f2b7e11e0bf861b064"
PDQ_C = "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d"
PHASH_A = "c3d1e0f0b0a09880"
PHASH_B = "8f0f0f0f07030301"
TE_HEADER = "signal_type,signal_str,collab,category,tags"

TE_CSV = f"""{TE_HEADER}
pdq,{PDQ_A},Sample Signals,INVESTIGATION_SEED,bridge sample
pdq,{PDQ_B},"Collab, with comma",TRUE_POSITIVE,
phash,{PHASH_A},VEIL_BANK,,
"""
TE_SIMPLE = f"""# exported from threatexchange
pdq {PDQ_A}

pdq {PDQ_B}
  # indented comment
phash {PHASH_A}
"""
VEIL_CSV = f"""phash,category,tags
{PHASH_A},spam,promo bulk
{PHASH_B},"violence, graphic",
"""


def problems(text: str, **kwargs: object) -> HashListError:
    with pytest.raises(HashListError) as caught:
        # Not type-checked below: wrong types on purpose: the parser must refuse them
        parse(text, **kwargs)  # type: ignore[arg-type]
    return caught.value


def only_message(text: str, **kwargs: object) -> str:
    error = problems(text, **kwargs)
    assert error.total == 1, error.describe()
    return str(error.errors[0])


# --- each format parses --------------------------------------------------------------------------------------


def test_te_csv_parses_quoted_fields_and_space_separated_tags() -> None:
    result = parse(TE_CSV)
    assert result.format == "te_csv"
    assert list(result) == [
        HashEntry("pdq", PDQ_A, category="INVESTIGATION_SEED", tags=("bridge", "sample"), collab="Sample Signals"),
        HashEntry("pdq", PDQ_B, category="TRUE_POSITIVE", collab="Collab, with comma"),
        HashEntry("phash", PHASH_A, collab="VEIL_BANK"),
    ]
    assert [entry.line for entry in result] == [2, 3, 4]
    assert (result.duplicates, result.skipped, len(result)) == (0, 0, 3)


def test_te_csv_reads_the_column_order_of_older_threatexchange_releases() -> None:
    text = f"collab,signal_type,signal_str,category,tags\nSample Signals,pdq,{PDQ_A},INVESTIGATION_SEED,x\n"
    assert list(parse(text)) == [HashEntry("pdq", PDQ_A, "INVESTIGATION_SEED", ("x",), "Sample Signals")]


def test_te_simple_parses_with_comments_and_blank_lines() -> None:
    result = parse(TE_SIMPLE)
    assert result.format == "te_simple"
    assert [(entry.signal_type, entry.signal, entry.line) for entry in result] == [
        ("pdq", PDQ_A, 2),
        ("pdq", PDQ_B, 4),
        ("phash", PHASH_A, 6),
    ]


def test_veil_phash_csv_parses() -> None:
    result = parse(VEIL_CSV)
    assert result.format == "veil_phash_csv"
    assert list(result) == [
        HashEntry("phash", PHASH_A, category="spam", tags=("promo", "bulk")),
        HashEntry("phash", PHASH_B, category="violence, graphic"),
    ]


def test_uppercase_hashes_and_signal_types_are_normalised() -> None:
    result = parse(f"PDQ {PDQ_A.upper()}\nphash {PHASH_A.upper()}\n")
    assert [(entry.signal_type, entry.signal) for entry in result] == [("pdq", PDQ_A), ("phash", PHASH_A)]


def test_bom_crlf_cr_and_trailing_whitespace_are_fine() -> None:
    for text in (TE_CSV, TE_SIMPLE, VEIL_CSV):
        expected = list(parse(text))
        messy = "\ufeff" + text.replace("\n", "  \r\n")
        assert list(parse(messy)) == expected
        assert [entry.line for entry in parse(messy)] == [entry.line for entry in expected]
        assert list(parse(text.replace("\n", "\r"))) == expected


def test_an_explicit_format_skips_detection() -> None:
    assert parse(TE_SIMPLE, format="te_simple").format == "te_simple"
    with pytest.raises(ValueError, match="unknown hash-list format 'csv'"):
        parse(TE_SIMPLE, format="csv")


# --- detection -----------------------------------------------------------------------------------------------


def test_detect_format() -> None:
    assert detect_format(TE_CSV) == "te_csv"
    assert detect_format("\ufeff" + TE_CSV.replace("\n", "\r\n")) == "te_csv"
    assert detect_format("collab,signal_type,signal_str,category,tags\n") == "te_csv"
    assert detect_format(TE_SIMPLE) == "te_simple"
    assert detect_format(VEIL_CSV) == "veil_phash_csv"


def test_detect_format_names_what_it_could_not_recognise() -> None:
    with pytest.raises(HashListError) as caught:
        detect_format("\n\nhash,label\nabc,def\n")
    message = str(caught.value)
    assert "line 3" in message
    assert "'hash,label'" in message
    assert TE_HEADER in message and "phash,category,tags" in message and "<signal_type> <signal>" in message


# --- round trips ---------------------------------------------------------------------------------------------


def test_exports_round_trip_exactly() -> None:
    te_entries = parse(TE_CSV).entries
    assert parse(dump_te_csv(te_entries)).entries == te_entries
    simple_entries = parse(TE_SIMPLE).entries
    assert parse(dump_te_simple(simple_entries)).entries == simple_entries
    veil_entries = parse(VEIL_CSV).entries
    assert parse(dump_veil_phash_csv(veil_entries)).entries == veil_entries
    # And a second pass is byte-identical.
    assert dump_te_csv(parse(dump_te_csv(te_entries))) == dump_te_csv(te_entries)


def test_te_csv_is_written_as_threatexchange_writes_it() -> None:
    text = dump_te_csv([HashEntry("pdq", PDQ_A, "TRUE_POSITIVE", ("a", "b"), "Sample Signals")])
    assert text == f"{TE_HEADER}\r\npdq,{PDQ_A},Sample Signals,TRUE_POSITIVE,a b\r\n"
    assert dump_te_simple([HashEntry("pdq", PDQ_A), HashEntry("phash", PHASH_A)]) == f"pdq {PDQ_A}\nphash {PHASH_A}\n"


def test_veil_phash_csv_refuses_pdq_entries() -> None:
    with pytest.raises(ValueError, match="only phash entries"):
        dump_veil_phash_csv([HashEntry("pdq", PDQ_A)])


# --- formula injection ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dangerous", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "'=already"])
def test_csv_exports_neutralise_formulas_and_parse_restores_them(dangerous: str) -> None:
    entry = HashEntry("phash", PHASH_A, category=dangerous, tags=(dangerous, "ok"), collab=dangerous)
    for dump in (dump_te_csv, dump_veil_phash_csv):
        text = dump([entry])
        (row,) = list(csv.reader(io.StringIO(text)))[1:]
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row
        assert "'" + dangerous in row
        restored = parse(text).entries[0]
        assert restored.category == dangerous and restored.tags == (dangerous, "ok")
    assert parse(dump_te_csv([entry])).entries[0].collab == dangerous


def test_harmless_values_are_written_unchanged() -> None:
    entry = HashEntry("phash", PHASH_A, category="o'brien", tags=("x-y", "'quoted"))
    assert dump_veil_phash_csv([entry]).splitlines()[1] == f"{PHASH_A},o'brien,x-y 'quoted"
    assert parse(dump_veil_phash_csv([entry])).entries == (entry,)


def test_formula_in_an_imported_file_is_kept_as_data() -> None:
    (entry,) = parse(f"phash,category,tags\n{PHASH_A},=cmd|' /C calc'!A0,\n")
    assert entry.category == "=cmd|' /C calc'!A0"
    assert f"{PHASH_A},'=cmd|' /C calc'!A0," in dump_veil_phash_csv([entry])


# --- duplicates and unsupported types ------------------------------------------------------------------------


def test_duplicates_are_collapsed_first_row_wins() -> None:
    text = f"{TE_HEADER}\npdq,{PDQ_A},ONE,TRUE_POSITIVE,\npdq,{PDQ_A.upper()},TWO,DISPUTED,\npdq,{PDQ_A},ONE,x,\n"
    result = parse(text)
    assert result.duplicates == 2
    assert [(entry.collab, entry.line) for entry in result] == [("ONE", 2)]
    assert result.summary() == "1 entry (2 duplicates collapsed)"


def test_unsupported_signal_types_are_errors_unless_skipped() -> None:
    text = f"{TE_HEADER}\npdq,{PDQ_A},C,,\ntmk,d41d8cd98f00b204e9800998ecf8427e,C,,\nurl,http://x,C,,\n"
    error = problems(text)
    assert [str(item) for item in error.errors] == [
        "line 3: unsupported signal type 'tmk' (Veil matches pdq, phash, video_md5 and vpdq)",
        "line 4: unsupported signal type 'url' (Veil matches pdq, phash, video_md5 and vpdq)",
    ]
    result = parse(text, skip_unsupported=True)
    assert [entry.signal for entry in result] == [PDQ_A]
    assert (result.skipped, dict(result.skipped_types)) == (2, {"tmk": 1, "url": 1})
    assert result.summary() == "1 entry (2 skipped (tmk: 1, url: 1))"
    assert only_message("md5 d41d8cd98f00b204e9800998ecf8427e\n") == (
        "line 1: unsupported signal type 'md5' (Veil matches pdq, phash, video_md5 and vpdq)"
    )


def test_a_file_of_only_skipped_rows_has_no_entries() -> None:
    message = only_message("tmk d41d8cd98f00b204e9800998ecf8427e\n", skip_unsupported=True)
    assert message == "the file has no entries (1 of unsupported signal types skipped)"


# --- errors: every class names its line and the bad value ----------------------------------------------------


def test_bad_hex_names_line_and_value() -> None:
    bad = PDQ_A[:-1] + "g"
    assert only_message(f"{TE_HEADER}\npdq,{PDQ_A},C,,\npdq,{bad},C,,\n") == (
        f"line 3: pdq hash '{bad}' is not hexadecimal (contains 'g')"
    )
    assert only_message(f"phash,category,tags\n{PHASH_A},,\n0x{PHASH_A[2:]},,\n").startswith(
        f"line 3: phash hash '0x{PHASH_A[2:]}' is not hexadecimal"
    )


def test_wrong_length_names_line_and_value() -> None:
    assert only_message(f"pdq {PDQ_A}\n\npdq {PDQ_A}ab\n") == (
        f"line 3: pdq hash '{PDQ_A}ab' has 66 hex characters; a pdq hash has 64"
    )
    assert (
        only_message(f"phash {PDQ_A}\n") == f"line 1: phash hash '{PDQ_A}' has 64 hex characters; a phash hash has 16"
    )
    assert only_message(f"{TE_HEADER}\npdq,,C,,\n") == "line 2: missing pdq hash"


def test_wrong_header_names_line_and_value() -> None:
    text = f"\nsignal_type,signal_str,collab,category\npdq,{PDQ_A},C,\n"
    assert only_message(text) == (
        f"line 2: expected the header '{TE_HEADER}', found 'signal_type,signal_str,collab,category'"
    )
    assert only_message(f"phash,tags,category\n{PHASH_A},,\n").startswith(
        "line 1: expected the header 'phash,category,tags', found 'phash,tags,category'"
    )
    # A file given as one format but holding another.
    assert only_message(TE_SIMPLE, format="te_csv").startswith(
        f"line 1: expected the header '{TE_HEADER}', found '# exported from threatexchange'"
    )


def test_wrong_field_count_and_malformed_lines() -> None:
    assert only_message(f"{TE_HEADER}\npdq,{PDQ_A},C\n") == "line 2: expected 5 comma-separated fields, found 3"
    assert (
        only_message(f"pdq {PDQ_A} extra\n") == f"line 1: expected '<signal_type> <signal>', found 'pdq {PDQ_A} extra'"
    )
    assert only_message(f'{TE_HEADER}\npdq,{PDQ_A},C,,\npdq,{PDQ_B},"unterminated,,\n').startswith(
        "line 3: malformed CSV"
    )


def test_line_breaks_inside_quoted_fields_are_rejected_with_the_starting_line() -> None:
    text = f'{TE_HEADER}\npdq,{PDQ_A},C,"two\nlines",\npdq,{PDQ_B},C,,x =y\npdq,zz,C,,\n'
    error = problems(text)
    assert [item.line for item in error.errors] == [2, 5]
    assert "category 'two\\nlines' contains a control character or line break" in str(error.errors[0])


def test_empty_file_is_an_error() -> None:
    for text in ("", "\ufeff", "\n \r\n", "# only a comment\n", f"{TE_HEADER}\r\n", "phash,category,tags\n\n"):
        assert only_message(text) == "the file has no entries", repr(text)


def test_too_many_entries_stops_at_the_first_row_over_the_limit() -> None:
    rows = "".join(f"phash {index:016x}\n" for index in range(50))
    assert only_message(rows, max_entries=10) == "line 11: more than 10 entries (the limit); split the file"
    assert len(parse(rows, max_entries=50)) == 50
    with pytest.raises(ValueError, match="at least 1"):
        parse(rows, max_entries=0)


def test_limit_is_checked_before_the_rest_of_the_file_is_read() -> None:
    # Every row after the limit is bad; had they been read, they would have been reported too.
    text = "".join(f"phash {index:016x}\n" for index in range(5)) + "phash nothex\n" * 1000
    error = problems(text, max_entries=5)
    assert error.total == 1
    assert str(error.errors[0]) == "line 6: more than 5 entries (the limit); split the file"


def test_one_bad_line_means_nothing_is_returned() -> None:
    rows = [f"phash {index:016x}" for index in range(100)]
    rows[57] = "phash 123"
    error = problems("\n".join(rows))
    assert [str(item) for item in error.errors] == [
        "line 58: phash hash '123' has 3 hex characters; a phash hash has 16"
    ]


def test_errors_are_capped_but_counted() -> None:
    error = problems("phash zz\n" * 120)
    assert len(error.errors) == hashlists.MAX_REPORTED_ERRORS
    assert error.total == 120
    assert [item.line for item in error.errors[:3]] == [1, 2, 3]
    assert str(error).startswith("120 problems in the hash list:\n  line 1: phash hash 'zz' is not hexadecimal")
    assert str(error).endswith("… and 70 more")


def test_long_bad_values_are_clipped_in_messages() -> None:
    message = only_message("pdq " + "z" * 5000 + "\n")
    assert len(message) < 200 and "…" in message


def test_decode_accepts_bom_and_rejects_non_utf8() -> None:
    assert hashlists.decode(b"\xef\xbb\xbfpdq " + PDQ_A.encode()) == f"pdq {PDQ_A}"
    with pytest.raises(HashListError) as caught:
        hashlists.decode(f"pdq {PDQ_A}\nphash \xff".encode("latin-1"))
    assert caught.value.errors == [LineError(2, "not UTF-8 text (byte 0xff)")]


# --- entries validate themselves ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"signal_type": "md5", "signal": PHASH_A}, "unsupported signal type 'md5'"),
        ({"signal_type": "pdq", "signal": PDQ_A.upper()}, "is not lowercase"),
        ({"signal_type": "pdq", "signal": PDQ_A[:-2]}, "has 62 hex characters"),
        ({"signal_type": "phash", "signal": PHASH_A, "tags": ("two words",)}, "contains whitespace"),
        ({"signal_type": "phash", "signal": PHASH_A, "tags": ("",)}, "is empty"),
        ({"signal_type": "phash", "signal": PHASH_A, "category": " padded"}, "leading or trailing whitespace"),
        ({"signal_type": "phash", "signal": PHASH_A, "collab": "a\x00b"}, "control character"),
    ],
)
def test_hash_entry_rejects_what_could_not_round_trip(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        # Not type-checked below: wrong types on purpose: the parser must refuse them
        HashEntry(**kwargs)  # type: ignore[arg-type]


def test_hash_entry_identity_ignores_the_source_line() -> None:
    assert HashEntry("pdq", PDQ_A, line=3) == HashEntry("pdq", PDQ_A, line=9)
    # Not type-checked below: wrong types on purpose: the parser must refuse them
    assert HashEntry("pdq", PDQ_A, tags=["a"]).tags == ("a",)  # type: ignore[arg-type]
    assert hashlists.normalise_signal("pdq", f"  {PDQ_A.upper()} ") == PDQ_A


def test_parse_result_is_iterable() -> None:
    result = parse(VEIL_CSV)
    assert isinstance(result, ParseResult)
    assert [entry.signal for entry in result] == [PHASH_A, PHASH_B]
    assert result.summary() == "2 entries"


def test_phash_integers_match_what_the_models_store() -> None:
    assert hashlists.phash_from_int(-1) == "ffffffffffffffff"
    assert hashlists.phash_from_int(2**64 - 1) == "ffffffffffffffff"
    assert hashlists.phash_to_int("ffffffffffffffff") == -1
    assert hashlists.phash_to_int("7fffffffffffffff") == 2**63 - 1
    assert hashlists.phash_to_int("8000000000000000") == -(2**63)
    assert hashlists.phash_from_int(hashlists.phash_to_int(PHASH_A)) == PHASH_A
    with pytest.raises(ValueError):
        hashlists.phash_from_int(2**64)


# --- PDQ -----------------------------------------------------------------------------------------------------


def shapes(layout: int, size: tuple[int, int] = (512, 384)) -> Image.Image:
    """A structured picture: a gradient background with a few large, deterministic shapes."""
    width, height = size
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(img)
    if layout == 1:
        draw.ellipse((40, 40, 260, 260), fill=(220, 30, 30))
        draw.rectangle((300, 120, 480, 340), fill=(30, 60, 220))
        draw.polygon([(60, 360), (200, 280), (260, 370)], fill=(250, 220, 40))
    else:
        draw.rectangle((0, 0, width // 2, height // 3), fill=(10, 10, 10))
        draw.ellipse((280, 20, 500, 240), fill=(250, 250, 250))
        draw.rectangle((40, 200, 200, 370), fill=(0, 160, 60))
    return img


def test_pdq_of_gives_64_hex_and_a_quality() -> None:
    signal, quality = pdq_of(shapes(1))
    assert len(signal) == 64 and set(signal) <= set("0123456789abcdef")
    assert isinstance(quality, int) and PDQ_MIN_QUALITY <= quality <= 100
    assert HashEntry("pdq", signal).signal == signal
    # Modes other than RGB are converted, not rejected.
    assert pdq_distance(pdq_of(shapes(1).convert("RGBA"))[0], signal) == 0
    assert pdq_of(shapes(1).convert("L"))[0] == pdq_of(shapes(1).convert("L").convert("RGB"))[0]


def test_pdq_distance_resized_copy_is_near_and_a_different_picture_is_far() -> None:
    original, _ = pdq_of(shapes(1))
    resized, _ = pdq_of(shapes(1).resize((256, 192), Image.Resampling.LANCZOS))
    different, _ = pdq_of(shapes(2))
    assert pdq_distance(original, resized) < PDQ_MATCH_THRESHOLD
    assert pdq_distance(original, different) > PDQ_MATCH_THRESHOLD
    assert hashlists.pdq_matches(original, resized) and not hashlists.pdq_matches(original, different)


def test_flat_image_quality_is_too_low_to_match() -> None:
    _, quality = pdq_of(Image.new("RGB", (256, 256), (128, 128, 128)))
    assert quality < PDQ_MIN_QUALITY


def test_pdq_distance_known_values_and_validation() -> None:
    assert pdq_distance(PDQ_A, PDQ_A.upper()) == 0
    assert pdq_distance("0" * 64, "f" * 64) == 256
    assert pdq_distance(PDQ_A, "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22") == 2
    with pytest.raises(ValueError, match="has 16 hex characters"):
        pdq_distance(PDQ_A, PHASH_A)
