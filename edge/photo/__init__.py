"""Photo quality, the standard ID photo and document rectification.

Pure functions of a frame (a BGR ``numpy`` array): no camera, no files, no clocks. The camera
driver in ``edge.drivers.camera`` feeds them frames; tests feed them generated ones.
"""

from __future__ import annotations

from edge.photo.document import Quad, document_photo, find_document, rectify_document
from edge.photo.idphoto import (
    ID_PHOTO_HEIGHT,
    ID_PHOTO_WIDTH,
    EncodedJpeg,
    JpegTooLargeError,
    crop_id_photo,
    encode_jpeg_capped,
    id_photo_window,
    portrait_photo,
)
from edge.photo.quality import (
    REASON_TEXT,
    Box,
    InvalidFrameError,
    Measurements,
    Point,
    QualityReport,
    Reason,
    Thresholds,
    check_portrait,
)

__all__ = [
    "ID_PHOTO_HEIGHT",
    "ID_PHOTO_WIDTH",
    "REASON_TEXT",
    "Box",
    "EncodedJpeg",
    "InvalidFrameError",
    "JpegTooLargeError",
    "Measurements",
    "Point",
    "Quad",
    "QualityReport",
    "Reason",
    "Thresholds",
    "check_portrait",
    "crop_id_photo",
    "document_photo",
    "encode_jpeg_capped",
    "find_document",
    "id_photo_window",
    "portrait_photo",
    "rectify_document",
]
