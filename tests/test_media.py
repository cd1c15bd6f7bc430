"""intake.media against hostile and odd images. Plain pytest: no Django, no database."""

from __future__ import annotations

import contextlib
import io
import pickle
import random
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFilter, JpegImagePlugin

from intake import media
from intake.media import Derivatives, ImageInfo, UnsafeImage
from tests.helpers import imagecorpus as corpus
from tests.helpers.imagecorpus import RED

MAX_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 50_000_000
MAX_FRAMES = 500


def inspect(data: bytes, **limits: int) -> ImageInfo:
    options = {"size": len(data), "max_bytes": MAX_BYTES, "max_pixels": MAX_PIXELS, "max_frames": MAX_FRAMES}
    options.update(limits)
    return media.inspect_image(io.BytesIO(data), **options)


def derive(data: bytes, **options: int) -> Derivatives:
    return media.make_derivatives(io.BytesIO(data), max_pixels=options.pop("max_pixels", MAX_PIXELS), **options)


def refusal(data: bytes, **limits: int) -> UnsafeImage:
    with pytest.raises(UnsafeImage) as caught:
        inspect(data, **limits)
    return caught.value


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


def colour_at(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def edge_energy(img: Image.Image) -> float:
    # Pillow's 3x3 filters leave the outermost pixels unfiltered, so only the interior measures edges.
    return float(pixels(img.convert("L").filter(ImageFilter.FIND_EDGES))[1:-1, 1:-1].mean())


# --- refusals -------------------------------------------------------------------------------------------------


def test_empty_file_is_refused():
    error = refusal(corpus.empty())
    assert error.code == "empty_file"
    assert "empty" in error.detail


def test_too_large_is_refused_before_reading_anything():
    class Untouchable(io.BytesIO):
        def read(self, *args: object) -> bytes:
            raise AssertionError("the file was read although its size alone refuses it")

    with pytest.raises(UnsafeImage) as caught:
        media.inspect_image(
            Untouchable(), size=MAX_BYTES + 1, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, max_frames=MAX_FRAMES
        )
    assert caught.value.code == "too_large"
    assert "25.0 MiB" in caught.value.detail


def test_text_file_named_jpg_is_unsupported_and_detail_lists_the_accepted_formats():
    error = refusal(corpus.text_file())
    assert error.code == "unsupported_format"
    for name in media.ALLOWED_FORMATS:
        assert name in error.detail


@pytest.mark.parametrize(
    "data",
    [corpus.svg(), corpus.svg_with_declaration(), corpus.svg(b"\n  <!-- drawn by hand -->\n"), corpus.svg_utf16()],
    ids=["plain", "bom-whitespace-xml-declaration", "leading-comment", "utf16-bom"],
)
def test_svg_is_refused(data):
    error = refusal(data)
    assert error.code == "svg_refused"
    assert "SVG" in error.detail


@pytest.mark.parametrize(
    "data",
    [
        corpus.truncated_jpeg(),
        corpus.truncated_png(),
        corpus.png_without_end(),
        corpus.truncated_webp(),
        corpus.jpeg()[:3],
    ],
    ids=["jpeg-half", "png-half", "png-cut-in-IEND", "webp-half", "jpeg-magic-only"],
)
def test_truncated_files_are_refused(data):
    error = refusal(data)
    assert error.code == "truncated"
    assert "truncated" in error.detail


def test_corrupt_jpeg_is_refused_as_corrupt():
    error = refusal(corpus.corrupt_jpeg())
    assert error.code == "corrupt"
    assert "JPEG" in error.detail and "corrupt" in error.detail


def test_png_decompression_bomb_is_refused_at_the_header():
    data = corpus.png_bomb()
    assert len(data) < 100_000  # 400 megapixels in a few tens of KB
    error = refusal(data)
    assert error.code == "decompression_bomb"
    assert "400000000 pixels" in error.detail


def test_pillow_bomb_guard_still_applies_when_max_pixels_is_set_above_it():
    error = refusal(corpus.png_bomb(), max_pixels=10**10)
    assert error.code == "decompression_bomb"


def test_pillow_bomb_warning_is_an_error_inside_media_only():
    data = corpus.png_header_claiming(10000, 10000)  # above Pillow's warning level, below its error level
    assert refusal(data, max_pixels=10**9).code == "decompression_bomb"
    with pytest.warns(Image.DecompressionBombWarning):
        Image.open(io.BytesIO(data))  # outside media the process keeps Pillow's default: a warning


def test_header_claiming_huge_dimensions_is_refused_without_decoding():
    error = refusal(corpus.png_header_claiming(60000, 60000))
    # Beyond Pillow's own limit, so its guard answers first (see the module docstring).
    assert error.code == "decompression_bomb"
    assert "3600000000 pixels" in error.detail


def test_dimensions_over_max_pixels_are_refused_with_the_dimensions():
    error = refusal(corpus.png_header_claiming(8000, 7000))
    assert error.code == "too_many_pixels"
    assert "8000x7000" in error.detail
    assert "50,000,000" in error.detail


def test_max_pixels_applies_to_ordinary_images():
    error = refusal(corpus.jpeg(400, 300), max_pixels=100_000)
    assert error.code == "too_many_pixels"
    assert "400x300" in error.detail


def test_refusals_leave_no_global_pillow_or_warnings_state_behind():
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    for data in (corpus.png_bomb(), corpus.truncated_jpeg(), corpus.png_header_claiming(8000, 7000)):
        with pytest.raises(UnsafeImage):
            inspect(data)
        with pytest.raises(UnsafeImage):
            derive(data)
    assert limit == Image.MAX_IMAGE_PIXELS
    assert warnings.filters == filters


@pytest.mark.parametrize(
    "data",
    [
        corpus.empty(),
        corpus.text_file(),
        corpus.svg(),
        corpus.truncated_jpeg(),
        corpus.corrupt_jpeg(),
        corpus.png_bomb(),
        corpus.png_header_claiming(8000, 7000),
        corpus.truncated_webp(),
    ],
    ids=["empty", "text", "svg", "truncated", "corrupt", "bomb", "too-many-pixels", "truncated-webp"],
)
def test_make_derivatives_refuses_the_same_files_with_unsafe_image(data):
    with pytest.raises(UnsafeImage) as caught:
        derive(data)
    assert caught.value.code in {
        "unsupported_format",
        "svg_refused",
        "truncated",
        "corrupt",
        "decompression_bomb",
        "too_many_pixels",
    }
    assert caught.value.detail


def test_unsafe_image_survives_pickling_for_celery():
    error = pickle.loads(pickle.dumps(UnsafeImage("corrupt", "The JPEG data is corrupt.")))
    assert (error.code, error.detail) == ("corrupt", "The JPEG data is corrupt.")
    assert str(error) == "corrupt: The JPEG data is corrupt."


# --- accepted images -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt", "mime"),
    [
        (corpus.jpeg(640, 480), "JPEG", "image/jpeg"),
        (corpus.png(320, 240), "PNG", "image/png"),
        (corpus.gif(320, 240), "GIF", "image/gif"),
        (corpus.webp(320, 240), "WEBP", "image/webp"),
    ],
    ids=["jpeg", "png", "gif", "webp"],
)
def test_accepted_formats_give_correct_info(data, fmt, mime):
    info = inspect(data)
    size = (640, 480) if fmt == "JPEG" else (320, 240)
    assert info == ImageInfo(format=fmt, mime=mime, width=size[0], height=size[1], frames=1)


def test_format_comes_from_content_not_name():
    upload = io.BytesIO(corpus.png())
    upload.name = "holiday.jpg"
    info = media.inspect_image(
        upload, size=len(upload.getvalue()), max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, max_frames=MAX_FRAMES
    )
    assert info.format == "PNG"


@pytest.mark.parametrize("data", [corpus.jpeg(), corpus.truncated_jpeg(), corpus.text_file()], ids=str)
def test_inspect_leaves_the_file_at_offset_zero(data):
    upload = io.BytesIO(data)
    upload.seek(len(data))
    with contextlib.suppress(UnsafeImage):
        media.inspect_image(upload, size=len(data), max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, max_frames=MAX_FRAMES)
    assert upload.tell() == 0


def test_animated_gif_frames_are_counted_and_limited():
    data = corpus.animated_gif(300)
    info = inspect(data)
    assert (info.format, info.frames, info.width, info.height) == ("GIF", 300, 64, 64)
    error = refusal(data, max_frames=100)
    assert error.code == "too_many_frames"
    assert "300 frames" in error.detail


def test_animated_webp_frames_are_counted_and_limited():
    data = corpus.animated_webp(12)
    assert inspect(data).frames == 12
    assert refusal(data, max_frames=5).code == "too_many_frames"


def test_animated_png_frames_are_counted_and_limited():
    data = corpus.animated_png(20)
    assert (inspect(data).format, inspect(data).frames) == ("PNG", 20)
    assert refusal(data, max_frames=10).code == "too_many_frames"


@pytest.mark.parametrize("size", [(1, 1), (3000, 2), (2, 3000)])
def test_degenerate_shapes_still_render(size):
    derived = derive(corpus.encode(Image.new("RGB", size, RED), "PNG"))
    if size == (1, 1):
        assert (derived.width, derived.height) == (1, 1)
    else:  # a strip is tiled into a reviewable picture (tests/test_security_media.py), never 1600x1
        assert max(derived.width, derived.height) <= 1600 and min(derived.width, derived.height) >= 96
    preview = opened(derived.preview)
    assert preview.mode == "L" and max(preview.size) == 480 and min(preview.size) >= 1


def test_animated_gif_derivatives_use_the_first_frame_only():
    derived = derive(corpus.animated_gif(300))
    red, green, blue = colour_at(opened(derived.display), (32, 32))
    assert red > 180 and green < 70 and blue < 70


def test_exif_rotated_jpeg_is_displayed_upright():
    data = corpus.rotated_jpeg_with_metadata()
    info = inspect(data)
    assert (info.width, info.height) == (400, 200)  # as stored

    derived = derive(data)
    assert (derived.width, derived.height) == (200, 400)
    display = opened(derived.display)
    assert display.size == (200, 400)
    # Rotating 90 degrees clockwise moves the stored top-left corner to the top-right.
    assert colour_at(display, (150, 50))[0] > 180  # red
    assert colour_at(display, (50, 50))[2] > 180  # blue
    assert colour_at(display, (150, 350))[2] > 180  # blue
    assert opened(derived.preview).size == (240, 480)


def test_derivatives_carry_no_metadata():
    derived = derive(corpus.rotated_jpeg_with_metadata())
    for data in (derived.display, derived.preview):
        img = opened(data)
        for key in ("exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"):
            assert key not in img.info
        assert len(img.getexif()) == 0
        assert b"Exif\x00\x00" not in data
        assert corpus.SECRET not in data
        assert b"ICC_PROFILE" not in data


def test_cmyk_jpeg_is_converted_to_rgb_with_correct_colours():
    assert inspect(corpus.cmyk_jpeg()).format == "JPEG"
    display = opened(derive(corpus.cmyk_jpeg()).display)
    assert display.mode == "RGB"
    red, green, blue = colour_at(display, (50, 50))
    assert red > 220 and green < 40 and blue < 40
    assert max(colour_at(display, (150, 50))) < 40  # K100 is black, not inverted white


def test_sixteen_bit_png_is_scaled_not_clipped():
    data = corpus.png16_gradient()
    assert opened(data).mode == "I;16"  # the case Pillow's convert("L") clips to white
    info = inspect(data)
    assert (info.format, info.width, info.height) == ("PNG", 512, 64)
    display = pixels(opened(derive(data).display).convert("L"))
    assert display[:, :16].mean() < 20
    assert display[:, -16:].mean() > 235
    assert 110 < display[:, 240:272].mean() < 145
    assert display.std() > 60


def test_palette_png_transparency_is_flattened_onto_grey():
    display = opened(derive(corpus.palette_png_with_transparency()).display)
    assert all(abs(channel - 128) <= 6 for channel in colour_at(display, (10, 25)))  # was transparent green
    red, green, blue = colour_at(display, (90, 25))
    assert red > 190 and green < 60 and blue < 60


@pytest.mark.parametrize("mode", ["1", "L", "LA", "RGB", "RGBA", "P"])
def test_every_png_mode_renders_to_rgb(mode):
    data = corpus.mode_png(mode)
    assert opened(data).mode == mode
    derived = derive(data)
    display = opened(derived.display)
    assert (display.mode, display.size) == ("RGB", (160, 120))
    assert pixels(display).std() > 10
    assert opened(derived.preview).mode == "L"


def test_webp_derivatives():
    derived = derive(corpus.webp(320, 240))
    assert (derived.width, derived.height, derived.display_mime) == (320, 240, "image/jpeg")
    assert opened(derived.display).format == "JPEG"


@pytest.fixture(scope="module")
def twelve_megapixel_jpeg() -> bytes:
    return corpus.jpeg(4000, 3000, quality=80)


def test_twelve_megapixel_jpeg_is_decoded_at_reduced_scale(monkeypatch, twelve_megapixel_jpeg):
    calls = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = original(self, mode, size)
        calls.append((mode, size, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    data = twelve_megapixel_jpeg
    assert inspect(data).width == 4000
    calls.clear()

    derived = derive(data)
    # libjpeg decoded at 1/2 scale, not 12 megapixels. (Image.thumbnail asks for a draft again later; Pillow
    # ignores a second draft, which the unchanged size confirms.)
    assert calls[0] == ("RGB", (1600, 1200), (2000, 1500))
    assert {size for _, _, size in calls} == {(2000, 1500)}
    assert (derived.width, derived.height) == (1600, 1200)
    assert opened(derived.display).size == (1600, 1200)
    assert max(opened(derived.preview).size) == 480


def test_inspect_hands_libjpeg_the_skeleton_not_the_pixels(monkeypatch, twelve_megapixel_jpeg):
    """The request's check reads headers and tables, not 12 megapixels: the worker decodes those, once."""
    seen = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = original(self, mode, size)
        seen.append((self.size, len(self.fp.getvalue())))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    assert inspect(twelve_megapixel_jpeg).width == 4000
    assert len(seen) == 1
    size, stream_bytes = seen[0]
    assert size == (500, 375)
    assert stream_bytes < 2_000 < len(twelve_megapixel_jpeg) // 100


def _decode_refusal(data: bytes) -> str | None:
    """The request check Veil had before: entropy-decode every block at 1/8 scale. The refusal code, or None."""
    fp = io.BytesIO(data)
    try:
        with media._pillow_errors(fp, "JPEG"), Image.open(fp, formats=("JPEG",)) as img:
            img.draft("L", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except UnsafeImage as error:
        return error.code
    return None


def _inspect_refusal(data: bytes) -> str | None:
    try:
        inspect(data)
    except UnsafeImage as error:
        return error.code
    return None


def _jpeg_variant(kind: str) -> bytes:
    options: dict[str, object] = {"progressive": True} if kind == "progressive" else {}
    if kind == "restarts":
        options["restart_marker_blocks"] = 4
    data = corpus.encode(corpus.photo(320, 240, seed=3), "JPEG", quality=90, **options)
    assert (b"\xff\xdd" in data) == (kind == "restarts")
    return data


@pytest.mark.parametrize("kind", ["baseline", "progressive", "restarts"])
def test_inspect_refuses_every_damaged_jpeg_that_a_full_decode_refuses(kind):
    """Random damage (bytes overwritten anywhere or in the scan, or the file cut short) swept through the old
    decode-everything check and through inspect: inspect must refuse all that the decode refused."""
    base = _jpeg_variant(kind)
    scan = base.index(b"\xff\xda") + 20
    rng = random.Random(f"damage-{kind}")
    missed, both = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about the EXIF-like garbage some damage creates
        for trial in range(200):
            damaged = bytearray(base)
            how = rng.choice(["scan", "scan", "anywhere", "cut"])
            if how == "cut":
                damaged = damaged[: rng.randrange(2, len(damaged) - 1)]
            else:
                start = scan if how == "scan" else 2
                for _ in range(rng.choice([1, 3, 20])):
                    damaged[rng.randrange(start, len(damaged) - 2)] = rng.randrange(256)
            old, new = _decode_refusal(bytes(damaged)), _inspect_refusal(bytes(damaged))
            if old and not new:
                missed.append((trial, how, old))
            both += bool(old and new)
    assert not missed
    assert both >= 40  # the sweep really produced refusals


def test_inspect_refuses_bad_tables_in_a_later_progressive_scan():
    data = bytearray(_jpeg_variant("progressive"))
    first = data.index(b"\xff\xda")
    later = data.index(b"\xff\xda", first + 2)
    for index in range(data[later + 4]):  # every component of that scan names tables that were never defined
        data[later + 6 + 2 * index] = 0x33
    assert refusal(bytes(data)).code == "corrupt"


def test_inspect_accepts_what_follows_the_end_of_image_and_embedded_thumbnails():
    data = corpus.jpeg(320, 240)
    thumbnail = corpus.jpeg(32, 24)  # an EXIF-style APP1 carrying a whole JPEG, markers and all
    payload = b"Exif\x00\x00" + thumbnail
    with_app1 = data[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]
    assert inspect(with_app1).width == 320
    assert inspect(data + corpus.jpeg(64, 48)).width == 320  # an MPO-like second picture after the EOI
    assert inspect(data + b"trailer bytes").width == 320


def test_inspect_refuses_a_jpeg_cut_anywhere():
    data = _jpeg_variant("progressive")
    for cut in range(3, len(data) - 1, max(1, len(data) // 40)):
        assert refusal(data[:cut]).code in {"truncated", "corrupt"}, cut
    assert refusal(data[:-2]).code == "truncated"  # only the end-of-image marker missing


def test_small_images_are_not_upscaled_for_display():
    derived = derive(corpus.png(100, 40))
    assert (derived.width, derived.height) == (100, 40)


# --- the preview --------------------------------------------------------------------------------------------


def test_preview_is_grey_small_and_carries_no_more_than_a_tiny_image():
    derived = derive(corpus.jpeg(1200, 900))
    preview = opened(derived.preview)
    assert (preview.mode, preview.size) == ("L", (480, 360))
    shrunk = preview.resize((24, 18), Image.Resampling.BOX).resize(preview.size, Image.Resampling.BICUBIC)
    assert np.abs(pixels(preview) - pixels(shrunk)).mean() < 2.0


@pytest.mark.parametrize("source", [corpus.checkerboard(), corpus.text_image()], ids=["checkerboard", "text"])
def test_preview_makes_sharp_detail_unrecoverable(source):
    preview = opened(derive(corpus.encode(source, "PNG")).preview)
    source_grey = pixels(source.convert("L"))
    assert source_grey.std() > 40
    assert pixels(preview).std() < 0.1 * source_grey.std()
    assert edge_energy(source) > 20
    assert edge_energy(preview) < 1.0  # what is left is JPEG quantisation of smooth shading


# --- hashes -------------------------------------------------------------------------------------------------


def test_identical_images_hash_identically():
    first, second = derive(corpus.jpeg()), derive(corpus.jpeg())
    assert (first.phash, first.dhash) == (second.phash, second.dhash)


def test_resized_and_reencoded_copy_hashes_close_and_a_different_image_far():
    original = derive(corpus.encode(corpus.photo(1200, 900, seed=1), "PNG"))
    copy = derive(corpus.encode(corpus.photo(1200, 900, seed=1).resize((500, 375)), "JPEG", quality=60))
    other = derive(corpus.encode(corpus.photo(1200, 900, seed=7), "PNG"))
    assert media.hamming(original.phash, copy.phash) <= 10
    assert media.hamming(original.dhash, copy.dhash) <= 10
    assert media.hamming(original.phash, other.phash) >= 20
    assert media.hamming(original.dhash, other.dhash) >= 20


def test_hashes_fit_a_signed_bigint():
    for value in (derive(corpus.jpeg(seed=seed)).phash for seed in range(1, 6)):
        assert -(2**63) <= value < 2**63


@pytest.mark.parametrize("unsigned", [0, 1, 2**63 - 1, 2**63, 2**63 + 5, 2**64 - 1, 0xF0F0_0000_0000_1234])
def test_signed_conversion_round_trips(unsigned):
    signed = media.to_signed64(unsigned)
    assert -(2**63) <= signed < 2**63
    assert media.to_unsigned64(signed) == unsigned
    assert media.to_signed64(signed) == signed
    assert (signed < 0) == (unsigned >= 2**63)


def test_top_bit_values_become_negative():
    assert media.to_signed64(2**64 - 1) == -1
    assert media.to_signed64(2**63) == -(2**63)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1])
def test_values_outside_64_bits_are_rejected(value):
    with pytest.raises(ValueError, match="64 bits"):
        media.to_signed64(value)


def test_hamming_accepts_signed_and_unsigned_forms():
    a, b = 2**64 - 1, 0x0F
    assert media.hamming(a, b) == 60
    assert media.hamming(media.to_signed64(a), b) == 60
    assert media.hamming(media.to_signed64(a), media.to_unsigned64(media.to_signed64(a))) == 0
