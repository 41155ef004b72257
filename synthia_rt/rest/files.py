"""``POST /files/upload``: keep a validated image for a later ``analysis.start {file_id}``.

Multipart with one file part (``file`` or ``image``). The body is read through a counting
stream, so an oversized upload is refused with ``too_large`` as soon as it passes the limit
— with or without a Content-Length — instead of being spooled to disk first. The image gets
exactly the socket path's validation (real format, pixel cap, decode budget, reduced to
``image_max_side``, EXIF/GPS stripped).

Before the body is read the upload is admitted (:meth:`AnalysisService.file_upload`): the
per-user rate (``upload_rate_limit``), one of the user's analysis slots, and its bytes in this
process's in-flight budget; the kept file is charged to the user's byte budget.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.routing import BaseRoute

from synthia_rt.analysis.service import AnalysisService
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.rest.deps import runtime_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import Out

TAGS = ("analysis",)
FIELDS = ("file", "image")
MULTIPART_OVERHEAD = 16 * 1024  # boundaries and part headers around the image bytes
IMAGE_ERRORS = (
    ErrorCode.BAD_REQUEST,
    ErrorCode.TOO_LARGE,
    ErrorCode.INVALID_IMAGE,
    ErrorCode.RATE_LIMITED,
    ErrorCode.UNAVAILABLE,
)


class FileOut(Out):
    file_id: str
    sha256: str
    size: int
    content_type: str
    expires_at: str


def service_of(request: Request) -> AnalysisService:
    service = runtime_of(request).analysis
    if service is None:
        raise AppError(ErrorCode.UNAVAILABLE)
    return service


async def read_image_part(request: Request) -> bytes:
    """The bytes of the one image part of a multipart body, bounded by ``max_image_bytes``."""
    limit = runtime_of(request).settings.max_image_bytes
    ceiling = limit + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > ceiling:
        raise AppError(ErrorCode.TOO_LARGE)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise AppError(
            ErrorCode.BAD_REQUEST, "Send the image as multipart/form-data (field 'image')."
        )

    async def bounded() -> AsyncGenerator[bytes, None]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > ceiling:
                raise AppError(ErrorCode.TOO_LARGE)
            yield chunk

    parser = MultiPartParser(
        request.headers, bounded(), max_files=1, max_fields=5, max_part_size=64 * 1024
    )
    try:
        form = await parser.parse()
    except MultiPartException:
        raise AppError(ErrorCode.BAD_REQUEST, "The multipart body is malformed.") from None
    try:
        part = next((form[name] for name in FIELDS if isinstance(form.get(name), UploadFile)), None)
        if not isinstance(part, UploadFile):
            raise AppError(
                ErrorCode.BAD_REQUEST,
                "The body has no file part named 'image' or 'file'.",
                field="image",
            )
        data = await part.read(limit + 1)
        if len(data) > limit:
            raise AppError(ErrorCode.TOO_LARGE)
        return data
    finally:
        await form.close()


@api(
    "POST",
    "/files/upload",
    "Upload an image for a later analysis",
    response=FileOut,
    status=201,
    errors=IMAGE_ERRORS,
    tags=TAGS,
    description="multipart/form-data with one file part `image` (or `file`): JPEG, PNG or WEBP. "
    "The format is read from the bytes; metadata (EXIF, GPS) is removed before the image is kept. "
    "Pass `file_id` to the socket's `analysis.start`; the file expires after `upload_ttl` seconds "
    "and is deleted once analysed.",
)
async def upload(request: Request, principal: Principal) -> FileOut:
    service = service_of(request)
    ceiling = runtime_of(request).settings.max_image_bytes + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length", "")
    body_bytes = min(int(declared), ceiling) if declared.isdigit() else ceiling
    async with service.file_upload(principal, body_bytes) as file_id:
        data = await read_image_part(request)
        return FileOut(**await service.store_file(principal, data, file_id))


routes: list[BaseRoute] = [upload]
