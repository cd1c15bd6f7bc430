"""The near-duplicate engine (intake.neardup): every edit the issue lists is matched, hard negatives are not.

Pictures come from scikit-image's own data folder (tests.helpers.evalset, nothing downloaded); no database is needed.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from intake import neardup
from intake.neardup import Fingerprint, Matcher, Thresholds, fingerprint, query_keys, verify
from tests.helpers import evalset

# Photos with different kinds of content: a portrait, a still life, a cat, a night scene.
PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")


@functools.cache
def original(name: str) -> Image.Image:
    return evalset._load(name)


@functools.cache
def fp_of(name: str) -> Fingerprint:
    return fingerprint(original(name))


def assert_matches(copy: Image.Image, name: str) -> neardup.Match:
    """The copy, arriving after the original is stored, is found through the index and verified (and the other
    way round)."""
    matcher = Matcher()
    matcher.add(1, fp_of(name))
    copy_fp = fingerprint(copy)
    found = matcher.match(copy_fp)
    assert [item for item, _ in found] == [1], f"{name}: copy not matched"
    assert verify(fp_of(name), copy_fp) is not None, f"{name}: original not matched against the stored copy"
    return found[0][1]


def assert_distinct(a: Image.Image, b: Image.Image) -> None:
    fa, fb = fingerprint(a), fingerprint(b)
    assert verify(fa, fb) is None
    assert verify(fb, fa) is None
    matcher = Matcher()
    matcher.add(1, fa)
    assert matcher.match(fb) == []


# --- one test per edit type ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PHOTOS)
def test_resized(name):
    img = original(name)
    assert_matches(img.resize((img.width * 2 // 5, img.height * 2 // 5), Image.Resampling.LANCZOS), name)


@pytest.mark.parametrize("name", PHOTOS)
def test_reencoded_jpeg_quality_30(name):
    buffer = io.BytesIO()
    original(name).save(buffer, "JPEG", quality=30)
    match = assert_matches(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), name)
    assert match.method in {"phash", "identical"}


@pytest.mark.parametrize("name", PHOTOS)
def test_brightened(name):
    assert_matches(evalset.edit(original(name), "brightened", seed=1), name)


@pytest.mark.parametrize("name", PHOTOS)
def test_grayscale(name):
    assert_matches(original(name).convert("L").convert("RGB"), name)


def crop(img: Image.Image, fraction: float, where: str) -> Image.Image:
    """Remove ``fraction`` of the width and of the height: evenly from both sides, or all from one corner."""
    w, h = img.size
    cut_x, cut_y = round(w * fraction), round(h * fraction)
    left, top = {"centre": (cut_x // 2, cut_y // 2), "top-left": (cut_x, cut_y), "bottom-right": (0, 0),
                 "top-right": (0, cut_y)}[where]
    return img.crop((left, top, left + w - cut_x, top + h - cut_y))


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("where", ["centre", "top-left", "bottom-right"])
def test_cropped_5_percent(name, where):
    assert_matches(crop(original(name), 0.05, where), name)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("where", ["centre", "top-left", "top-right"])
def test_cropped_10_percent(name, where):
    copy = crop(original(name), 0.10, where)
    assert copy.width == original(name).width - round(original(name).width * 0.1)
    assert_matches(copy, name)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("degrees", [3, -3])
def test_rotated_3_degrees(name, degrees):
    copy = original(name).rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))
    assert_matches(copy, name)


@pytest.mark.parametrize("name", PHOTOS)
def test_mirrored(name):
    match = assert_matches(original(name).transpose(Image.Transpose.FLIP_LEFT_RIGHT), name)
    assert match.method == "phash-mirrored"


def test_mirrored_copies_share_their_index_keys():
    img = original("coffee.png")
    assert set(query_keys(fingerprint(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))) & set(fp_of("coffee.png").keys)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0), (30, 200, 170)])
def test_framed_with_a_border(name, colour):
    img = original(name)
    border = min(img.size) // 12
    framed = Image.new("RGB", (img.width + 2 * border, img.height + 2 * border), colour)
    framed.paste(img, (border, border))
    assert_matches(framed, name)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_captioned_with_a_text_band(name, seed):
    copy = evalset.edit(original(name), "captioned", seed=seed)
    assert copy.height > original(name).height
    match = assert_matches(copy, name)
    assert match.method.startswith("crop")


def test_combined_edits_mirror_crop_and_reencode():
    img = evalset.edit(original("astronaut.png"), "crop_5", seed=4).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=50)
    assert_matches(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), "astronaut.png")


def test_match_explains_itself():
    match = verify(fingerprint(crop(original("coffee.png"), 0.10, "centre")), fp_of("coffee.png"))
    assert match is not None
    assert 0 <= match.distance <= Thresholds().index_radius
    assert "aligned at scale 0.9" in match.detail or "aligned at scale 1.1" in match.detail


# --- hard negatives -----------------------------------------------------------------------------------------------


def test_stereo_pair_motorcycle_left_and_right_are_distinct():
    left, right = original("motorcycle_left.png"), original("motorcycle_right.png")
    assert_distinct(left, right)
    # ...also once edited: a mirrored, grey or cropped left view is still not the right view
    for kind in ("mirrored", "grayscale", "crop_5", "jpeg_q30"):
        assert_distinct(evalset.edit(left, kind, seed=1), right)
        assert_distinct(left, evalset.edit(right, kind, seed=2))


def test_texture_quadrants_brick_grass_gravel_are_distinct():
    tiles = evalset.texture_crops()
    fps = [fingerprint(img) for _, img in tiles]
    for (a, fa), (b, fb) in itertools.permutations(zip([n for n, _ in tiles], fps, strict=True), 2):
        assert verify(fa, fb) is None, f"{a} merged with {b}"


def test_hubble_tiles_are_distinct():
    tiles = evalset.hubble_tiles()
    fps = [fingerprint(img) for _, img in tiles]
    for i, j in itertools.permutations(range(len(fps)), 2):
        assert verify(fps[i], fps[j]) is None, f"{tiles[i][0]} merged with {tiles[j][0]}"


def test_different_lfw_faces_are_distinct():
    faces = evalset.lfw_faces(40)
    fps = [fingerprint(img) for _, img in faces]
    matcher = Matcher()
    for i, fp in enumerate(fps):
        assert matcher.match(fp) == [], f"{faces[i][0]} merged"
        matcher.add(i, fp)


def test_chessboards_of_other_sizes_are_distinct():
    boards = evalset.chessboards()
    fps = [fingerprint(img) for _, img in boards]
    for i, j in itertools.permutations(range(len(fps)), 2):
        assert verify(fps[i], fps[j]) is None, f"{boards[i][0]} merged with {boards[j][0]}"


def test_flat_images_of_slightly_different_grey_are_distinct():
    flats = [Image.new("RGB", (320, 240), (v, v, v)) for v in (120, 124, 128, 136)]
    fps = [fingerprint(img) for img in flats]
    assert all(fp.keys == () for fp in fps), "near-uniform pictures carry no index keys"
    for i, j in itertools.permutations(range(len(fps)), 2):
        assert verify(fps[i], fps[j]) is None
    # ...while the very same flat picture, re-encoded, is still recognised when compared directly
    buffer = io.BytesIO()
    flats[2].save(buffer, "JPEG", quality=90)
    again = fingerprint(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    match = verify(again, fps[2])
    assert match is not None and match.method == "identical"


def test_near_uniform_gradients_and_noise_are_distinct():
    pictures = [img for _, img in evalset.flat_images() if not _.startswith("flat")]
    fps = [fingerprint(img) for img in pictures]
    for i, j in itertools.permutations(range(len(fps)), 2):
        assert verify(fps[i], fps[j]) is None


def test_similar_generated_graphics_are_distinct():
    fps = [fingerprint(evalset.synthetic_photo(seed, 160, 120)) for seed in range(60)]
    matcher = Matcher()
    for i, fp in enumerate(fps):
        assert matcher.match(fp) == []
        matcher.add(i, fp)


# --- fingerprints, thresholds, the command --------------------------------------------------------------------------


def test_fingerprint_round_trips_through_bytes():
    fp = fp_of("astronaut.png")
    blob = fp.to_bytes()
    again = Fingerprint.from_bytes(blob)
    assert again == fp
    assert again.to_bytes() == blob
    assert np.array_equal(again.payload.thumb, fp.payload.thumb)
    assert verify(again, fp) is not None


def test_fingerprint_shape():
    fp = fp_of("rocket.jpg")
    windows = len(neardup.WINDOWS)
    assert len(fp.payload.views) == 1 and windows <= len(fp.keys) <= 2 * windows
    assert all(-(2**63) <= k < 2**63 for k in fp.keys)
    assert len(fp.pdq) == 64 and fp.pdq == fp.pdq.lower() and int(fp.pdq, 16) >= 0
    assert 0 <= fp.pdq_quality <= 100
    assert len(fp.data) <= 4600
    assert fingerprint(original("rocket.jpg")) == fp  # deterministic
    banded = fingerprint(evalset.edit(original("rocket.jpg"), "captioned", seed=2))  # a second view: twice the keys
    assert len(banded.payload.views) == 2 and len(banded.keys) <= 4 * windows and len(banded.data) <= 9200


def test_fingerprint_accepts_any_mode_and_tiny_pictures():
    for img in (original("camera.png").convert("L"), Image.new("RGBA", (3, 2), (9, 9, 9, 9)),
                Image.new("P", (1, 40))):
        blob = fingerprint(img).to_bytes()
        assert Fingerprint.from_bytes(blob).to_bytes() == blob


def test_from_bytes_rejects_other_versions_and_truncation():
    blob = fp_of("coffee.png").to_bytes()
    with pytest.raises(ValueError, match="version"):
        Fingerprint.from_bytes(b"\x09" + blob[1:])
    with pytest.raises(ValueError, match="truncated"):
        Fingerprint.from_bytes(blob[:-10])


def test_thresholds_from_settings_mapping():
    assert Thresholds.from_mapping(None) == Thresholds()
    assert Thresholds.from_mapping({"index_radius": 6}).index_radius == 6
    with pytest.raises(ValueError, match="index_radus"):
        Thresholds.from_mapping({"index_radus": 6})


def test_stricter_thresholds_reject_what_defaults_accept():
    copy = fingerprint(evalset.edit(original("chelsea.png"), "crop_10", seed=1))
    assert verify(copy, fp_of("chelsea.png")) is not None
    assert verify(copy, fp_of("chelsea.png"), Thresholds(min_overlap=0.95)) is None


def test_matcher_remove_and_replace():
    matcher = Matcher()
    matcher.add(5, fp_of("coffee.png"))
    copy = fingerprint(evalset.edit(original("coffee.png"), "jpeg_q30", seed=1))
    assert [i for i, _ in matcher.match(copy)] == [5]
    matcher.remove(5)
    assert matcher.match(copy) == [] and len(matcher) == 0
    matcher.add(5, fp_of("astronaut.png"))
    assert matcher.match(copy) == []


def test_matcher_can_load_fingerprints_on_demand():
    stored = {7: fp_of("chelsea.png").to_bytes()}
    loads = []

    def load(item: int) -> Fingerprint | None:
        loads.append(item)
        return Fingerprint.from_bytes(stored[item]) if item in stored else None

    matcher = Matcher(load=load)
    matcher.add(7, fp_of("chelsea.png"))
    assert len(matcher) == 0  # nothing but keys in memory
    copy = fingerprint(original("chelsea.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert [i for i, _ in matcher.match(copy)] == [7] and loads == [7]


def test_cluster_images_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    coffee = original("coffee.png")
    coffee.save(tmp_path / "a1.png")
    (tmp_path / "a2-copy.png").write_bytes((tmp_path / "a1.png").read_bytes())
    coffee.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "b-mirrored.jpg", quality=85)
    original("motorcycle_left.png").save(tmp_path / "c-left.png")
    original("motorcycle_right.png").save(tmp_path / "d-right.png")
    (tmp_path / "e.txt").write_text("not an image")
    call_command("cluster_images", str(tmp_path), "--json")
    document = json.loads(capsys.readouterr().out)
    assert [c["files"] for c in document["clusters"]] == [["a1.png", "a2-copy.png", "b-mirrored.jpg"]]
    methods = {m["file"]: m["method"] for m in document["clusters"][0]["matches"]}
    assert methods["a2-copy.png"] == "identical-file" and methods["b-mirrored.jpg"] == "phash-mirrored"
    assert document["singletons"] == ["c-left.png", "d-right.png"]
    assert [s["file"] for s in document["skipped"]] == ["e.txt"]
    assert document["thresholds"]["index_radius"] == Thresholds().index_radius
    call_command("cluster_images", str(tmp_path))
    text = capsys.readouterr().out
    assert "Cluster 1 (3 files)" in text and "b-mirrored.jpg  ~ a1.png: phash-mirrored" in text


def test_cluster_images_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    coffee = original("coffee.png")
    coffee.save(tmp_path / "a.png")
    (tmp_path / "a-copy.png").write_bytes((tmp_path / "a.png").read_bytes())
    evalset.edit(coffee, "captioned", seed=3).save(tmp_path / "b-caption.png")
    original("motorcycle_left.png").save(tmp_path / "c-left.png")
    original("motorcycle_right.png").save(tmp_path / "d-right.png")
    (tmp_path / "e.txt").write_text("not an image")

    call_command("cluster_images", str(tmp_path), "--explain", "a-copy.png", "b-caption.png")
    text = capsys.readouterr().out
    assert "b-caption.png looked up against a-copy.png:" in text
    assert "verdict: the same picture" in text and "PASSES" in text
    assert text.strip().endswith("a-copy.png and b-caption.png are in the same cluster.")

    # The stereo pair: found by the index (their keys are close) but refused by the verification, with the reason.
    call_command("cluster_images", str(tmp_path), "--explain", "c-left.png", "d-right.png", "--json")
    document = json.loads(capsys.readouterr().out)
    assert document["joined"] is False and document["path"] == []
    explanation = "\n".join(document["explanation"])
    assert "verdict: not the same picture" in explanation and "fails:" in explanation
    assert "fine detail" in explanation

    call_command("cluster_images", str(tmp_path), "--explain", "a.png", "b-caption.png")
    text = capsys.readouterr().out  # "a-copy.png" sorts first, so a.png joined it as an identical file
    assert "b-caption.png looked up against a.png:" in text and "verdict: the same picture" in text
    assert "joined through other files: a.png ~ a-copy.png (identical-file, 0 bits); b-caption.png ~ a-copy.png" in text

    call_command("cluster_images", str(tmp_path), "--explain", "a.png", "a-copy.png")
    assert "identical bytes" in capsys.readouterr().out

    call_command("cluster_images", str(tmp_path), "--explain", "a.png", "c-left.png")
    text = capsys.readouterr().out
    assert "NOT a candidate" in text and "NOT in the same cluster" in text

    with pytest.raises(CommandError, match=r"e\.txt was skipped"):
        call_command("cluster_images", str(tmp_path), "--explain", "a.png", "e.txt")
    with pytest.raises(CommandError, match=r"missing\.png is not an image file of this folder"):
        call_command("cluster_images", str(tmp_path), "--explain", "a.png", "missing.png")


def test_band_removal_view_and_version_1_payloads_still_parse():
    coffee = original("coffee.png")
    banded = evalset.edit(coffee, "captioned", seed=5)
    fp = fingerprint(banded)
    views = fp.payload.views
    assert len(views) == 2  # the trimmed picture, and the picture without its caption band
    assert views[1].box[3] - views[1].box[1] < views[0].box[3] - views[0].box[1]
    assert any(w >= neardup.VIEW_STRIDE for w in fp.payload.windows.tolist())
    assert len(fingerprint(coffee).payload.views) == 1  # a plain photograph has no second view
    # A fingerprint stored before views existed (payload version 1) still parses and verifies.
    old = fingerprint(coffee).payload
    thumb = old.thumb.astype(np.uint8)
    chroma = (old.chroma + 128).astype(np.uint8)
    entries = np.zeros(len(old.hashes), dtype=np.dtype([("h", "<u8"), ("w", "u1"), ("m", "u1")]))
    entries["h"], entries["w"], entries["m"] = old.hashes, old.windows, old.mirrored
    import struct
    import zlib

    head = struct.pack("<BBBBBHHB", 1, thumb.shape[1], thumb.shape[0], chroma.shape[1], chroma.shape[0],
                       *old.content_size, len(old.hashes))
    v1 = Fingerprint(keys=fp_of("coffee.png").keys, pdq=fp_of("coffee.png").pdq, pdq_quality=50,
                     data=head + entries.tobytes() + zlib.compress(thumb.tobytes() + chroma.tobytes()))
    assert len(v1.payload.views) == 1
    assert verify(fingerprint(coffee.transpose(Image.Transpose.FLIP_LEFT_RIGHT)), v1) is not None


def test_occluded_copies_match_but_occlusion_does_not_excuse_a_different_picture():
    astronaut = original("astronaut.png")
    covered = astronaut.copy()
    from PIL import ImageDraw

    draw = ImageDraw.Draw(covered)
    w, h = covered.size
    draw.ellipse((w * 0.55, h * 0.1, w * 0.85, h * 0.4), fill=(250, 200, 0))  # a sticker over ~7 %
    draw.rectangle((w * 0.05, h * 0.75, w * 0.4, h * 0.85), fill=(255, 255, 255))
    assert_matches(covered, "astronaut.png")
    # The stereo pair and texture quadrants stay apart even though blocks may be set aside.
    assert_distinct(original("motorcycle_left.png"), original("motorcycle_right.png"))


def test_verification_shortcuts_give_numpy_s_values():
    """The hand-rolled median, quantile, upright and multi-channel sampling equal the plain numpy/general paths."""
    rng = np.random.default_rng(24)
    for n in (1, 2, 3, 10, 145):
        values = rng.normal(size=n)
        assert neardup._median(values) == np.median(values)
        assert neardup._quantile(values, 0.8) == np.quantile(values, 0.8)
    image = rng.uniform(0, 255, (40, 50))
    u, v = np.linspace(-3, 52, 30), np.linspace(-2, 41, 20)
    grid_u, grid_v = np.meshgrid(u, v)
    assert np.array_equal(neardup._sample_upright(image, u, v),
                          neardup._sample(image, grid_u.ravel(), grid_v.ravel()).reshape(20, 30))
    colour = rng.uniform(-60, 60, (12, 13, 2))
    both = neardup._sample_channels(colour, grid_u.ravel() / 4, grid_v.ravel() / 4)
    for k in (0, 1):
        assert np.array_equal(both[:, k], neardup._sample(np.ascontiguousarray(colour[:, :, k]), grid_u.ravel() / 4,
                                                          grid_v.ravel() / 4))


def test_a_block_without_variance_in_one_picture_does_not_correlate():
    # count, sum a, sum b, sum a*a, sum b*b, sum a*b: b constant (zero variance), a varies
    flat = np.array([[4.0, 10.0, 8.0, 30.0, 16.0, 20.000000001]])
    corr, var_a, _ = neardup._correlations(flat)
    assert corr[0] == 0.0 and var_a[0] > 0
    assert neardup._correlations(np.zeros((1, 6)))[0][0] == 0.0  # empty block
