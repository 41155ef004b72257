"""Image validation: format from the bytes, pixel cap from the header, metadata stripped."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile
from skimage import data as skdata

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.uploads.validate import validate_image
from tests.analysis_support import astronaut_jpeg, encode, png_bomb

LIMITS = {"max_pixels": 40_000_000, "max_bytes": 10 * 1024 * 1024}


def refused(data: bytes, code: ErrorCode = ErrorCode.INVALID_IMAGE, **limits: Any) -> AppError:
    with pytest.raises(AppError) as info:
        validate_image(data, **{**LIMITS, **limits})
    assert info.value.code == code
    return info.value


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_are_read_from_the_bytes(fmt: str) -> None:
    data = encode(skdata.astronaut(), fmt)
    image = validate_image(data, **LIMITS)
    assert image.format == fmt
    assert (image.width, image.height) == (512, 512)
    with Image.open(io.BytesIO(image.data)) as reopened:
        assert reopened.format == fmt and reopened.size == (512, 512)


def test_exif_and_gps_are_stripped_and_orientation_applied() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS IFD
    pixels = np.zeros((40, 80, 3), np.uint8)  # 80 wide, 40 tall as stored
    data = encode(pixels, "JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get(0x010F) == "SpyCam Inc."  # the fixture really has EXIF

    image = validate_image(data, **LIMITS)
    with Image.open(io.BytesIO(image.data)) as clean:
        assert len(clean.getexif()) == 0
        assert "exif" not in clean.info
        assert clean.size == (40, 80)  # upright: the orientation was applied, then dropped
    assert b"SpyCam" not in image.data


def test_png_text_chunks_are_dropped() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "home address: 1 Secret Lane")
    data = encode(np.full((8, 8, 3), 200, np.uint8), "PNG", pnginfo=info)
    assert b"Secret Lane" in data
    assert b"Secret Lane" not in validate_image(data, **LIMITS).data


def test_text_file_named_jpg_is_invalid() -> None:
    refused(b"just some text pretending to be a photo.jpg\n" * 10)


def test_other_real_formats_are_refused() -> None:
    for fmt in ("GIF", "BMP", "TIFF"):
        refused(encode(np.zeros((16, 16, 3), np.uint8), fmt))


def test_truncated_jpeg_is_invalid() -> None:
    data = astronaut_jpeg()
    refused(data[: len(data) // 2])


class _LoadSpy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = ImageFile.ImageFile.load

        def load(img: ImageFile.ImageFile) -> Any:
            self.calls += 1
            return original(img)

        monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_bomb_below_pillows_limit_is_refused_from_the_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """8000×6000 = 48 Mpx: under Pillow's own bomb threshold, over our cap; never decoded."""
    bomb = png_bomb(8000, 6000)
    assert len(bomb) < 200
    spy = _LoadSpy(monkeypatch)
    refused(bomb)
    assert spy.calls == 0


def test_bomb_past_pillows_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """100k × 100k trips Pillow's DecompressionBombError inside open; still invalid_image."""
    spy = _LoadSpy(monkeypatch)
    refused(png_bomb(100_000, 100_000))
    assert spy.calls == 0


def test_pillows_bomb_warning_band_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between Pillow's warning and error thresholds (~89–179 Mpx) with a higher cap of ours:
    the warning (an error under pytest) must come out as invalid_image, before any decoding."""
    spy = _LoadSpy(monkeypatch)
    refused(png_bomb(12_000, 10_000), max_pixels=500_000_000)
    assert spy.calls == 0


def test_pixel_cap_is_a_setting() -> None:
    data = encode(np.zeros((100, 100, 3), np.uint8), "PNG")
    assert validate_image(data, max_pixels=10_000, max_bytes=LIMITS["max_bytes"]).width == 100
    refused(data, max_pixels=9_999)


def test_too_many_bytes_is_too_large() -> None:
    data = astronaut_jpeg()
    refused(data, ErrorCode.TOO_LARGE, max_bytes=len(data) - 1)
