"""Hash lists in the database: import all-or-nothing, export round-trip, commands."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from core.models import AuditEvent
from intake.models import HashList, HashListEntry
from tests.helpers.factories import make_queue

pytestmark = pytest.mark.django_db

PDQ_A = "f" * 64
PDQ_B = "0123456789abcdef" * 4
TE_CSV = (
    "signal_type,signal_str,collab,category,tags\r\n"
    f"pdq,{PDQ_A},NCMEC,CSAM,tag1 tag2\r\n"
    f"pdq,{PDQ_B},GIFCT,TVEC,\r\n"
)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_import_creates_list_and_entries_then_skips_present(tmp_path: Path):
    make_queue(slug="specialist")
    path = tmp_path / "list.csv"
    path.write_text(TE_CSV)
    out = run("import_hash_list", str(path), "--list", "KNOWN_TVEC", "--label", "Known terrorist content",
              "--action", "route", "--queue", "specialist")
    assert "2 added" in out
    hash_list = HashList.objects.get(name="KNOWN_TVEC")
    assert hash_list.action == "route" and hash_list.target_queue is not None
    assert set(hash_list.entries.values_list("signal", flat=True)) == {PDQ_A, PDQ_B}
    assert "0 added, 2 already there" in run("import_hash_list", str(path), "--list", "KNOWN_TVEC")
    assert AuditEvent.objects.filter(action="hash_list_imported").count() == 2


def test_a_bad_line_refuses_the_whole_file(tmp_path: Path):
    path = tmp_path / "list.txt"
    path.write_text(f"pdq {PDQ_A}\npdq nothex\npdq {PDQ_B}\n")
    with pytest.raises(CommandError) as exc:
        run("import_hash_list", str(path), "--list", "BAD", "--label", "x", "--action", "flag")
    assert "line 2" in str(exc.value) and "nothing was stored" in str(exc.value)
    assert not HashListEntry.objects.exists()


def test_list_names_follow_hma_rules(tmp_path: Path):
    path = tmp_path / "list.txt"
    path.write_text(f"pdq {PDQ_A}\n")
    with pytest.raises(CommandError, match="A-Z, 0-9"):
        run("import_hash_list", str(path), "--list", "bad-name", "--label", "x", "--action", "flag")
    with pytest.raises(CommandError, match="--queue"):
        run("import_hash_list", str(path), "--list", "ROUTED", "--label", "x", "--action", "route")


@pytest.mark.parametrize("fmt", ["te_csv", "te_simple"])
def test_export_round_trips(tmp_path: Path, fmt: str):
    path = tmp_path / "list.csv"
    path.write_text(TE_CSV)
    run("import_hash_list", str(path), "--list", "ROUND", "--label", "x", "--action", "flag")
    exported = run("export_hash_list", "ROUND", "--format", fmt)
    again = tmp_path / f"again.{fmt}"
    again.write_text(exported)
    run("import_hash_list", str(again), "--list", "ROUND2", "--label", "x", "--action", "flag")
    assert set(HashListEntry.objects.filter(hash_list__name="ROUND2").values_list("signal", flat=True)) == {
        PDQ_A, PDQ_B}
    if fmt == "te_csv":
        assert exported.startswith("signal_type,signal_str,collab,category,tags")
        assert "tag1 tag2" in exported


def test_phash_csv_export(tmp_path: Path):
    path = tmp_path / "ph.csv"
    path.write_text("phash,category,tags\n8f373714acfcf4d0,known,a b\n")
    run("import_hash_list", str(path), "--list", "PH", "--label", "x", "--action", "flag")
    assert "8f373714acfcf4d0" in run("export_hash_list", "PH", "--format", "veil_phash_csv")
    with pytest.raises(CommandError):
        run("export_hash_list", "NOPE")
