"""The picture stack's public names in one place (the package :mod:`shared.image` holds the code)."""

from shared.image.convert import Upload, carries_gps, preload, prepare_upload, sendable_as_is
from shared.image.memory import ANIMATION_PIXELS, DECODE_PIXELS
from shared.image.sniff import CONTENT_TYPES, CONVERTED_KINDS, SAFE_KINDS, SNIFF_BYTES, describe_non_image, sniff, unsupported_reason
from shared.image.upright import upright
from shared.image.validate import MAX_PIXELS, BadImage, ImageInfo, inspect

__all__ = [
    "ANIMATION_PIXELS", "CONTENT_TYPES", "CONVERTED_KINDS", "DECODE_PIXELS", "MAX_PIXELS", "SAFE_KINDS", "SNIFF_BYTES",
    "BadImage", "ImageInfo", "Upload", "carries_gps", "describe_non_image", "inspect", "prepare_upload", "preload",
    "sendable_as_is", "sniff", "unsupported_reason", "upright",
]
