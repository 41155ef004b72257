"""Image validation: the bytes decide the format, the header decides what decoding may cost,
and nothing leaves here with its metadata or at more than the size the analyzers use.

Order matters for safety and for memory:

1. ``Image.open(fp, formats=[JPEG, PNG, WEBP])`` reads only the header, and only with those
   three decoders (no TIFF/PSD/EPS… parser ever sees user bytes); the declared content type
   is ignored.
2. The pixel count from that header is checked against ``max_image_pixels`` *before*
   anything is decoded (``invalid_image``), so a decompression bomb (a small file declaring a
   huge canvas) is refused without allocating its canvas. Pillow's own bomb check (a warning
   past ~89 Mpx, an error past twice that) fires inside ``open``; both are caught as well.
3. The decode is *planned* from the header: JPEG decodes at 1/2, 1/4 or 1/8 scale (``draft``,
   done by libjpeg's IDCT, the full canvas never exists) when that still leaves ``max_side``
   pixels; PNG decodes its canvas once; WEBP is decoded by libwebp through OpenCV into one
   canvas (Pillow's WEBP path keeps ~4 canvases alive). The planned cost — decoded pixels ×
   bytes per pixel, plus a full-size conversion a palette/16-bit PNG needs — is checked
   against ``max_decode_bytes`` before decoding (``too_large``).
4. The decoded canvas is reduced at once (``Image.reduce`` then a resample, via
   ``thumbnail``) to ``max_side`` on its long side — what the analyzers consume (the local one
   works at ≤1024 px, Gemini tiles images in 768-px tiles) — and dropped. Everything after
   (EXIF orientation, mode conversion, the metadata-free copy, re-encoding in the same format)
   works on the reduced image. A truncated file fails in the decode.

CPU-bound and memory-hungry: callers go through :class:`Decoder`, which runs
:func:`validate_image` in a worker thread under a per-process semaphore.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageMode, UnidentifiedImageError

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.settings import Settings

FORMATS = ("JPEG", "PNG", "WEBP")
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAX_SIDE = 1536  # default of Settings.image_max_side
MAX_DECODE_BYTES = 128 * 1024 * 1024  # default of Settings.max_decode_bytes
# Modes Image.reduce/resize work on directly; others are converted (at full size) first.
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "F"}
_ORIENT = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


@dataclass(frozen=True, slots=True)
class ValidatedImage:
    data: bytes  # re-encoded, metadata-free, long side ≤ max_side
    format: str  # JPEG | PNG | WEBP, from the bytes
    width: int
    height: int

    @property
    def mime(self) -> str:
        return MIME[self.format]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _invalid(message: str) -> AppError:
    return AppError(ErrorCode.INVALID_IMAGE, message)


def bytes_per_pixel(mode: str) -> int:
    info = ImageMode.getmode(mode)
    return max(1, len(info.bands) * int(info.typestr[-1]))


def _alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info


def decode_cost(img: Image.Image, fmt: str) -> int:
    """Bytes the planned decode allocates at full (possibly drafted) size, from the header."""
    pixels = img.width * img.height
    if fmt == "WEBP":
        return pixels * (4 if _alpha(img) else 3)
    cost = pixels * bytes_per_pixel(img.mode)
    if img.mode not in _REDUCIBLE:  # P, PA, 1, I;16…: one full-size conversion before reducing
        cost += pixels * (4 if _alpha(img) else 3)
    return cost


def validate_image(
    data: bytes,
    *,
    max_pixels: int,
    max_bytes: int,
    max_side: int = MAX_SIDE,
    max_decode_bytes: int = MAX_DECODE_BYTES,
) -> ValidatedImage:
    """Check and clean ``data``; raises :class:`AppError` (``too_large``/``invalid_image``)."""
    if len(data) > max_bytes:
        raise AppError(ErrorCode.TOO_LARGE)
    try:
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as img:
            fmt = img.format
            width, height = img.size
            if fmt not in FORMATS:
                raise _invalid("Only JPEG, PNG and WEBP images are accepted.")
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise _invalid("The image has too many pixels.")
            if fmt == "JPEG" and max(width, height) > max_side:  # smallest 1/2^k scale ≥ the target
                img.draft(
                    img.mode if img.mode in ("RGB", "L") else None, _fit(width, height, max_side)
                )
            if decode_cost(img, fmt) > max_decode_bytes:
                raise AppError(
                    ErrorCode.TOO_LARGE, "Decoding this image would need too much memory."
                )
            small = _decode_webp(data, img, max_side) if fmt == "WEBP" else _decode(img, max_side)
            # After the decode: a PNG's eXIf chunk may follow its pixels (getexif would load).
            clean = _strip(small, int(img.getexif().get(0x0112, 1) or 1))
    except AppError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _invalid("The image has too many pixels.") from None
    except UnidentifiedImageError:
        raise _invalid("Only JPEG, PNG and WEBP images are accepted.") from None
    except (OSError, SyntaxError, ValueError, EOFError, cv2.error):
        # Truncated or corrupt data: Pillow reports these as OSError/SyntaxError/ValueError.
        raise _invalid("The image is truncated or corrupt.") from None
    assert fmt is not None
    return ValidatedImage(_encode(clean, fmt), fmt, clean.width, clean.height)


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode(img: ImageFile.ImageFile, max_side: int) -> Image.Image:
    """JPEG (drafted) or PNG: one canvas, reduced in place to ``max_side``."""
    img.load()
    if img.mode not in _REDUCIBLE:
        out = img.convert("RGBA" if _alpha(img) else "RGB")
    else:
        out = img  # thumbnail replaces the canvas in place; the file closes with `with`
    out.thumbnail((max_side, max_side))
    return out


def _decode_webp(data: bytes, img: Image.Image, max_side: int) -> Image.Image:
    alpha = _alpha(img)
    flags = (cv2.IMREAD_UNCHANGED if alpha else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if array is None or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise _invalid("The image is truncated or corrupt.")
    if array.shape[2] == 4:
        cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA, dst=array)
    else:
        cv2.cvtColor(array, cv2.COLOR_BGR2RGB, dst=array)
    height, width = array.shape[:2]
    if max(width, height) <= max_side:
        return Image.fromarray(array)
    small = cv2.resize(array, _fit(width, height, max_side), interpolation=cv2.INTER_AREA)
    del array
    return Image.fromarray(small)


def _strip(img: Image.Image, orientation: int) -> Image.Image:
    """The pixels only, upright: a new image that carries no metadata at all (small already)."""
    for step in _ORIENT.get(orientation, ()):
        img = img.transpose(step)
    mode = "RGBA" if _alpha(img) else "RGB"
    pixels = img.convert(mode)
    return Image.frombytes(mode, pixels.size, pixels.tobytes())


def _encode(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(out, "JPEG", quality=92)  # no optimize=True: 3x slower, ~5% smaller
    elif fmt == "PNG":
        img.save(out, "PNG", compress_level=6)
    else:
        img.save(out, "WEBP", quality=90)
    return out.getvalue()


class Decoder:
    """Per-process gate on image decoding: at most ``image_decode_concurrency`` at once, each
    in a worker thread (the event loop stays free), with this process's limits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slots = asyncio.Semaphore(max(1, settings.image_decode_concurrency))

    async def validate(self, data: bytes) -> ValidatedImage:
        s = self.settings
        async with self.slots:
            return await asyncio.to_thread(
                validate_image,
                data,
                max_pixels=s.max_image_pixels,
                max_bytes=s.max_image_bytes,
                max_side=s.image_max_side,
                max_decode_bytes=s.max_decode_bytes,
            )
