"""Valid JPEGs made on the spot with Pillow: exact sizes for uploads, small unique ones for analyses.

Every image differs (its own random pixels), so no two uploads share a SHA-256 and none is
answered from the result cache by accident. Upload images are pixel noise (it barely
compresses, so ~1 byte per pixel) padded to the exact byte size with JPEG comment segments —
still a valid image the server decodes, re-encodes and sends to the model.
"""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageDraw

MIB = 1024 * 1024
_COM_MAX = 65533  # payload bytes of one COM segment (length field counts itself)


def _pad(jpeg: bytes, size: int) -> bytes:
    """Insert COM segments right after SOI until the file is exactly ``size`` bytes."""
    missing = size - len(jpeg)
    segments = []
    while missing > 0:
        take = min(_COM_MAX, missing - 4) if missing > 4 else 0
        if take <= 0:  # fewer than 5 bytes to go: cannot fit a segment, caller shrinks instead
            raise ValueError("cannot pad by fewer than 5 bytes")
        if 0 < missing - (take + 4) < 5:
            take -= 5  # leave room for one more whole segment
        segments.append(b"\xff\xfe" + (take + 2).to_bytes(2, "big") + b"\x00" * take)
        missing -= take + 4
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def jpeg_of_size(size: int, seed: int) -> bytes:
    """A valid JPEG of exactly ``size`` bytes (>= 8 KiB) with one real face in it (so the
    analysis after the upload passes the face check), padded with COM segments."""
    side = 512
    for _ in range(8):
        data = face_like_jpeg(seed, side)
        if len(data) + 5 <= size:
            return data if len(data) == size else _pad(data, size)
        side = int(side * 0.8)
    raise ValueError(f"could not make a {size}-byte JPEG")


def face_like_jpeg(seed: int, side: int = 512) -> bytes:
    """A portrait JPEG with one real face (scikit-image's public-domain astronaut), unique per
    seed: every facial analysis now passes a face check before any model call, so a drawn oval
    would never reach the model the bench measures."""
    from skimage import data  # the bench and test extras carry scikit-image

    rng = random.Random(seed)
    image = Image.fromarray(data.astronaut()).crop((60, 0, 400, 340)).resize((side, side))
    draw = ImageDraw.Draw(image)
    for _ in range(40):  # a sprinkle of noise makes every seed a different file
        x, y = rng.randrange(side), rng.randrange(side)
        draw.point((x, y), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
