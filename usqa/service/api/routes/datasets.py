"""Data-set uploads (bearer token): `POST /datasets` (zip or tar of the folder format), `GET /datasets`."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from usqa.service.api.deps import ControlAuth, ServiceDep
from usqa.service.api.errors import MALFORMED_MULTIPART, ApiError
from usqa.service.api.request_body import FILE_FIELD, MULTIPART, media_type_of
from usqa.service.api.schemas import DatasetList, DatasetResponse, ErrorResponse
from usqa.service.datasets import DatasetError
from usqa.service.datasets.uploads import (
    INCOMING_PREFIX,
    DatasetStore,
    StorageError,
    UnknownDataset,
    UploadError,
    staging_name,
    sweep_staging,
)
from usqa.service.settings import Settings

router = APIRouter(tags=["retraining"], dependencies=[ControlAuth])

UPLOAD_TOO_LARGE = "data-set archive too large: more than {limit} bytes (USQA_MAX_UPLOAD_BYTES)"
NOT_MULTIPART = "send the archive as multipart/form-data with the file in a field named 'file'"
NO_ARCHIVE_PART = "multipart upload without a 'file' part holding the zip or tar archive"
COPY_CHUNK = 1 << 20

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "Not multipart, no file part, corrupt archive, unsafe paths",
    },
    401: {"model": ErrorResponse, "description": "Bearer token missing or wrong"},
    403: {"model": ErrorResponse, "description": "No API token configured: control endpoints are disabled"},
    404: {"model": ErrorResponse, "description": "No such data set"},
    413: {"model": ErrorResponse, "description": "Archive, unpacked size or member count over a limit"},
    415: {"model": ErrorResponse, "description": "Not a zip or tar archive"},
    422: {"model": ErrorResponse, "description": "The data set fails validation (every bad row is listed)"},
    500: {"model": ErrorResponse, "description": "The server could not store the upload (an I/O error)"},
    507: {"model": ErrorResponse, "description": "The server's data storage is full; nothing was kept"},
}
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            }
        },
    }
}


def dataset_store(settings: Settings) -> DatasetStore:
    return DatasetStore(
        settings.data_root,
        max_unpacked_bytes=settings.max_unpacked_bytes,
        max_members=settings.max_archive_members,
    )


async def _limited_stream(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "upload_too_large", UPLOAD_TOO_LARGE.format(limit=limit))
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "upload_too_large", UPLOAD_TOO_LARGE.format(limit=limit))
        yield chunk


def _save(upload: UploadFile, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        upload.file.seek(0)
        with target.open("wb") as out:
            shutil.copyfileobj(upload.file, out, COPY_CHUNK)
    except OSError as exc:
        raise StorageError(exc) from exc


@router.post(
    "/datasets",
    status_code=201,
    response_model=DatasetResponse,
    responses={
        **ERRORS,
        200: {"model": DatasetResponse, "description": "The same archive was uploaded before"},
    },
    openapi_extra=UPLOAD_BODY,
    summary="Upload a labelled data set (zip or tar of the data-set folder format)",
)
async def upload_dataset(request: Request, response: Response, service: ServiceDep) -> DatasetResponse:
    settings = service.settings
    if media_type_of(request.headers.get("content-type")) != MULTIPART:
        raise ApiError(415, "not_multipart", NOT_MULTIPART)
    parser = MultiPartParser(
        request.headers, _limited_stream(request, settings.max_upload_bytes), max_files=1, max_fields=8
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, "malformed_multipart", MALFORMED_MULTIPART.format(reason=exc)) from exc
    except OSError as exc:  # the parser spools big parts to a temporary file: a full disk lands here
        raise _storage_error(StorageError(exc)) from exc
    incoming = settings.data_root / staging_name(INCOMING_PREFIX)
    failed = True
    try:
        upload = form.get(FILE_FIELD)
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "no_file_part", NO_ARCHIVE_PART)
        await asyncio.to_thread(_save, upload, incoming)
        info, created = await asyncio.to_thread(
            dataset_store(settings).add_archive, incoming, upload.filename or "upload"
        )
        failed = False
    except UploadError as exc:
        raise ApiError(exc.status, "invalid_archive", str(exc)) from exc
    except DatasetError as exc:
        raise ApiError(422, "invalid_dataset", str(exc)) from exc
    except StorageError as exc:
        raise _storage_error(exc) from exc
    finally:
        incoming.unlink(missing_ok=True)
        await form.close()
        if failed:  # and whatever an earlier, killed upload left behind
            await asyncio.to_thread(sweep_staging, settings.data_root)
    response.status_code = 201 if created else 200
    return info


def _storage_error(exc: StorageError) -> ApiError:
    return ApiError(exc.status, "storage_full" if exc.status == 507 else "storage_error", str(exc))


@router.get("/datasets", response_model=DatasetList, responses=ERRORS)
async def list_datasets(service: ServiceDep) -> DatasetList:
    infos = await asyncio.to_thread(dataset_store(service.settings).list)
    return DatasetList(datasets=infos)


@router.get("/datasets/{dataset_id}", response_model=DatasetResponse, responses=ERRORS)
async def get_dataset(dataset_id: str, service: ServiceDep) -> DatasetResponse:
    try:
        info = await asyncio.to_thread(dataset_store(service.settings).info, dataset_id)
    except UnknownDataset as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    return info
