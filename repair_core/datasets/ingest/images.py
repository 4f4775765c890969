"""Decoding one untrusted image into a uint8 HWC array, or refusing it.

Only PNG, JPEG, BMP and WEBP plugins are ever consulted (`formats=`), so EPS (which
runs Ghostscript), TIFF, FITS and the rest are refused whatever the file is called.
Size is checked from the header before any pixel is decoded, both against our own
`max_pixels` and against Pillow's global `Image.MAX_IMAGE_PIXELS`, whose warning is
promoted to an error for this call only: the global is read, never written.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from repair_core.errors import ImageDecodeError

FORMATS = ("PNG", "JPEG", "BMP", "WEBP")
# Modes without colour decode to one channel; everything else (RGB, RGBA, P, CMYK,
# YCbCr, LAB, ...) to three. Alpha is dropped: models see opaque images.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def decode_image(data: bytes, *, name: str, max_pixels: int) -> np.ndarray:
    """Pixels of `data` as uint8 (H, W, 1) for grayscale or (H, W, 3) for colour images.

    Raises ImageDecodeError (naming `name`) for unknown formats, truncated or corrupt
    data, and images over `max_pixels` or Pillow's own bomb limit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return _decode(data, name, max_pixels)
        except ImageDecodeError:
            raise
        except MemoryError:
            raise
        # Pillow's plugins answer hostile bytes with a zoo of exception types
        # (OSError, SyntaxError, struct.error, IndexError, ValueError, EOFError,
        # DecompressionBombError/Warning, ...): every one means "not a usable image".
        except Exception as e:
            raise ImageDecodeError(f"{name}: not a decodable image ({_describe(e)})") from e


def _decode(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    image = Image.open(io.BytesIO(data), formats=FORMATS)
    _check_size(image.size, name, max_pixels)
    if image.format == "PNG":
        # PNG's verify() checks every chunk CRC without decoding pixels, and leaves the
        # image unusable, hence the reopen. For JPEG/BMP/WEBP Pillow's verify() only
        # closes the file (load() is their check), so the reopen would be pure cost.
        image.verify()
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        _check_size(image.size, name, max_pixels)
    with image:
        image.load()
        target = "L" if image.mode in _GRAY_MODES else "RGB"
        converted = image if image.mode == target else image.convert(target)
        pixels = np.asarray(converted, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return pixels


def _check_size(size: tuple[int, int], name: str, max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{name}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"{name}: {width}x{height} image has more than max_image_pixels={max_pixels} "
            "pixels (possible decompression bomb)"
        )


def _describe(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."
