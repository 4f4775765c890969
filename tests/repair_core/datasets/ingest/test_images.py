"""decode_image: formats, modes, and the image bombs it must refuse."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

from repair_core.datasets.ingest.images import decode_image
from repair_core.errors import ImageDecodeError
from tests.repair_core.datasets.ingest.builders import (
    EPS,
    FITS,
    encoded,
    png_bytes,
    png_header_bomb,
)

MAX = 4096 * 4096


def test_colour_png_decodes_to_hwc_rgb_with_exact_pixels() -> None:
    pixels = decode_image(png_bytes(5, 3, color=(1, 2, 3)), name="a.png", max_pixels=MAX)
    assert pixels.shape == (3, 5, 3)
    assert pixels.dtype == np.uint8
    assert (pixels == np.array([1, 2, 3], dtype=np.uint8)).all()


@pytest.mark.parametrize(
    ("mode", "color", "channels"),
    [("L", 77, 1), ("1", 1, 1), ("I;16", 300, 1), ("RGBA", (9, 8, 7, 0), 3), ("P", 5, 3)],
)
def test_modes_decode_to_one_channel_for_gray_and_three_otherwise(
    mode: str, color: object, channels: int
) -> None:
    pixels = decode_image(png_bytes(4, 4, mode=mode, color=color), name="x", max_pixels=MAX)
    assert pixels.shape == (4, 4, channels)


@pytest.mark.parametrize("fmt", ["JPEG", "BMP", "WEBP"])
def test_other_accepted_formats_decode(fmt: str) -> None:
    assert decode_image(encoded(fmt), name=f"x.{fmt}", max_pixels=MAX).shape == (8, 8, 3)


def test_png_header_declaring_30000_squared_pixels_is_refused_and_globals_unchanged() -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    with pytest.raises(ImageDecodeError, match=r"bomb\.png"):
        decode_image(png_header_bomb(30000, 30000), name="bomb.png", max_pixels=MAX)
    assert (
        Image.MAX_IMAGE_PIXELS,
        ImageFile.LOAD_TRUNCATED_IMAGES,
        list(warnings.filters),
    ) == before


def test_real_compressible_image_over_max_pixels_is_refused_before_decoding() -> None:
    data = png_bytes(300, 300, mode="L", color=0)
    assert len(data) < 2000
    with pytest.raises(ImageDecodeError, match="max_image_pixels=10000"):
        decode_image(data, name="big.png", max_pixels=10_000)


def test_pillow_bomb_warning_is_an_error_for_this_call_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Between Pillow's limit and twice it, Pillow only warns; here that warning must refuse.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        decode_image(png_bytes(40, 40), name="warn.png", max_pixels=MAX)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        Image.open(io.BytesIO(png_bytes(40, 40)))
    assert any(issubclass(w.category, Image.DecompressionBombWarning) for w in seen)


@pytest.mark.parametrize(
    "data",
    [EPS, FITS, encoded("TIFF"), encoded("GIF", mode="L"), encoded("PPM"), b"", b"not an image"],
    ids=["eps", "fits", "tiff", "gif", "ppm", "empty", "text"],
)
def test_formats_outside_the_allow_list_are_refused_whatever_the_name(data: bytes) -> None:
    with pytest.raises(ImageDecodeError, match=r"disguised\.png"):
        decode_image(data, name="disguised.png", max_pixels=MAX)


def test_truncated_jpeg_is_refused() -> None:
    data = encoded("JPEG", 64, 64)
    with pytest.raises(ImageDecodeError, match=r"cut\.jpg"):
        decode_image(data[: len(data) // 2], name="cut.jpg", max_pixels=MAX)


def test_truncated_png_and_png_with_a_bad_crc_are_refused() -> None:
    data = png_bytes(32, 32, color=(1, 2, 3))
    with pytest.raises(ImageDecodeError):
        decode_image(data[:-20], name="cut.png", max_pixels=MAX)
    broken = bytearray(data)
    idat = data.index(b"IDAT")
    broken[idat + 6] ^= 0xFF  # inside the compressed data, so only the CRC notices
    with pytest.raises(ImageDecodeError):
        decode_image(bytes(broken), name="crc.png", max_pixels=MAX)
