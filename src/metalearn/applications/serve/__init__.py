"""``metalearn serve``: the web app where a person teaches a trained run their own classes.

Needs the ``serve`` extra (Starlette, uvicorn). The page and its script and style are package
data under ``static/``, served by the app itself (no CDN, works offline).
"""

from metalearn.applications.serve.app import create_app
from metalearn.applications.serve.http import ApiError
from metalearn.applications.serve.model import Limits, ServedModel, SupportSet

__all__ = ["ApiError", "Limits", "ServedModel", "SupportSet", "create_app"]
