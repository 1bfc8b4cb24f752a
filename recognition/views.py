"""HTTP views of the recognition app."""

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from recognition.engine.install import installed_manifest


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness probe: says whether the models are installed (no secrets, no biometric data)."""
    manifest = installed_manifest(settings.MASKNET_MODELS_DIR)
    return JsonResponse({"ok": manifest is not None,
                         "models": manifest["version"] if manifest else None},
                        status=200 if manifest else 503)
