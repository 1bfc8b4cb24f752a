"""Typed errors raised by the recognition engine.

Front ends (the kiosk consumer, the admin, the API, the commands) turn each into
their own answer; ``code`` is a short stable identifier suitable for JSON.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""

    code = "engine_error"


class UnreadableImage(EngineError):
    """The bytes are not a decodable image (empty, truncated, unknown format)."""

    code = "unreadable_image"


class FrameTooLarge(EngineError):
    """The image is larger (bytes or pixels) than the configured limits."""

    code = "frame_too_large"


class NoFaceFound(EngineError):
    """No face was detected in the image."""

    code = "no_face"


class ModelsMissing(EngineError):
    """The converted models are not installed (run ``manage.py install_models``)."""

    code = "models_missing"


class ModelConversionError(EngineError):
    """A TF.js model could not be parsed or converted."""

    code = "model_conversion_error"
