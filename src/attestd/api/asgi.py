"""``attestd.api.asgi:app``: the ASGI application built from the environment's settings, for
ASGI servers that import an app by name (uvicorn with several workers, granian)."""

from __future__ import annotations

from attestd.api.app import create_app
from attestd.config import load_settings
from attestd.service import AttestationService

app = create_app(AttestationService(load_settings()))
