"""The web app of ``metalearn serve``: one page and a JSON API over a session's examples.

Routes (each answers JSON; a refusal is ``{"error": message}`` with a 4xx status):

* ``GET /api/state``: the run, the limits, the session's classes and whether it is taught.
* ``POST /api/classes`` ``{"name": ...}``: add a class; ``DELETE /api/classes/{name}``.
* ``POST /api/classes/{name}/examples`` (image body): add an example;
  ``DELETE`` the same path clears the class; ``GET``/``DELETE .../examples/{id}`` one example.
* ``POST /api/adapt``: teach the examples; ``POST /api/predict`` (image body): the class
  probabilities of one image.
* ``GET /api/export``: the personal model file; ``POST /api/import`` (file body): load one.

Nothing here reads or writes files named by a request: examples live in memory, per session.
Must not import ``metalearn.cli``, ``metalearn.build`` or ``metalearn.config``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from torch import Tensor

from metalearn.applications.serve.http import ApiError, read_body, read_json
from metalearn.applications.serve.images import read_image, to_png
from metalearn.applications.serve.model import Limits, ServedModel
from metalearn.applications.serve.sessions import Session, SessionStore

__all__ = ["COOKIE", "STATIC_DIR", "create_app"]

COOKIE = "metalearn_session"
STATIC_DIR = Path(__file__).parent / "static"
_PAGE_HEADERS = {
    # Everything the page needs comes from this server; nothing may load from elsewhere.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:",
    "X-Content-Type-Options": "nosniff",
}

Handler = Callable[[Request, Session], Awaitable[Response]]


class _Api:
    """The API's handlers over one served model, its limits and its sessions."""

    def __init__(self, model: ServedModel, limits: Limits) -> None:
        self.model, self.limits = model, limits
        self.sessions = SessionStore(limits.max_sessions, limits.session_ttl_seconds)

    def endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap ``handler`` with the session cookie and the JSON rendering of refusals."""

        async def run(request: Request) -> Response:
            sent = request.cookies.get(COOKIE)
            token, session = self.sessions.get(sent)
            try:
                response = await handler(request, session)
            except ApiError as error:
                response = JSONResponse({"error": error.message}, status_code=error.status)
            if token != sent:
                response.set_cookie(
                    COOKIE,
                    token,
                    max_age=int(self.limits.session_ttl_seconds),
                    httponly=True,
                    samesite="strict",
                )
            return response

        return run

    def _image(self, body: bytes, request: Request) -> Any:
        model = self.model
        return read_image(
            body,
            request.headers.get("content-type"),
            size=model.image_size,
            channels=model.channels,
            invert_values=model.invert,
            max_pixels=self.limits.max_pixels,
        )

    def _class(self, request: Request, session: Session) -> dict[int, Any]:
        name = request.path_params["name"]
        if name not in session.classes:
            raise ApiError(404, f"no class {name!r}; add it first (POST /api/classes)")
        return session.classes[name]

    def _state(self, session: Session) -> dict[str, Any]:
        model, personal = self.model, session.personal
        taught = None
        if personal is not None:
            taught = {"classes": personal.class_names, "stale": session.is_stale}
        return {
            "model": {"name": model.name, "image_size": model.image_size, "n_way": model.n_way},
            "limits": {
                "max_classes": self.limits.max_classes,
                "max_examples_per_class": self.limits.max_examples_per_class,
                "max_image_bytes": self.limits.max_image_bytes,
            },
            "classes": [{"name": n, "examples": list(e)} for n, e in session.classes.items()],
            "taught": taught,
        }

    async def state(self, request: Request, session: Session) -> Response:
        """``GET /api/state``."""
        return JSONResponse(self._state(session))

    async def add_class(self, request: Request, session: Session) -> Response:
        """``POST /api/classes`` with ``{"name": ...}``."""
        body = await read_json(request, self.limits.max_json_bytes)
        name = self._check_name(body.get("name"))
        if name in session.classes:
            raise ApiError(409, f"there is already a class {name!r}")
        if len(session.classes) >= self.limits.max_classes:
            raise ApiError(422, f"a session holds at most {self.limits.max_classes} classes")
        session.classes[name] = {}
        session.changed()
        return JSONResponse({"name": name}, status_code=201)

    def _check_name(self, name: Any) -> str:
        if not isinstance(name, str):
            raise ApiError(400, 'send {"name": "<class name>"} with a string name')
        name = name.strip()
        limit = self.limits.max_name_length
        if not 1 <= len(name) <= limit or not name.isprintable() or "/" in name:
            raise ApiError(
                422, f"a class name has 1 to {limit} printable characters and no '/'; got {name!r}"
            )
        return name

    async def delete_class(self, request: Request, session: Session) -> Response:
        """``DELETE /api/classes/{name}``."""
        self._class(request, session)
        del session.classes[request.path_params["name"]]
        session.changed()
        return Response(status_code=204)

    async def add_example(self, request: Request, session: Session) -> Response:
        """``POST /api/classes/{name}/examples`` with an image body."""
        examples = self._class(request, session)
        if len(examples) >= self.limits.max_examples_per_class:
            raise ApiError(
                422, f"a class holds at most {self.limits.max_examples_per_class} examples"
            )
        image = self._image(await read_body(request, self.limits.max_image_bytes), request)
        example_id = session.add_example(request.path_params["name"], image)
        return JSONResponse({"id": example_id}, status_code=201)

    async def clear_class(self, request: Request, session: Session) -> Response:
        """``DELETE /api/classes/{name}/examples``."""
        self._class(request, session).clear()
        session.changed()
        return Response(status_code=204)

    def _example(self, request: Request, session: Session) -> tuple[dict[int, Any], int]:
        examples, example_id = self._class(request, session), request.path_params["example_id"]
        if example_id not in examples:
            raise ApiError(
                404, f"class {request.path_params['name']!r} has no example {example_id}"
            )
        return examples, example_id

    async def get_example(self, request: Request, session: Session) -> Response:
        """``GET /api/classes/{name}/examples/{id}``: the example as the learner sees it (PNG)."""
        examples, example_id = self._example(request, session)
        png = to_png(examples[example_id], invert_values=self.model.invert)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    async def delete_example(self, request: Request, session: Session) -> Response:
        """``DELETE /api/classes/{name}/examples/{id}``."""
        examples, example_id = self._example(request, session)
        del examples[example_id]
        session.changed()
        return Response(status_code=204)

    async def adapt(self, request: Request, session: Session) -> Response:
        """``POST /api/adapt``: teach the session's examples to the learner."""
        counts = {name: len(examples) for name, examples in session.classes.items()}
        self.model.check_support(counts)
        names = list(session.classes)
        images = [image for examples in session.classes.values() for image in examples.values()]
        labels = [label for label, n in enumerate(counts.values()) for _ in range(n)]
        version, start = session.version, time.perf_counter()
        personal = await run_in_threadpool(self.model.teach, images, labels, names)
        session.personal, session.taught_version = personal, version
        seconds = time.perf_counter() - start
        return JSONResponse({**self._state(session), "seconds": round(seconds, 4)})

    async def predict(self, request: Request, session: Session) -> Response:
        """``POST /api/predict`` with an image body: the probability of each taught class."""
        image = self._image(await read_body(request, self.limits.max_image_bytes), request)
        personal = session.personal
        if personal is None:
            raise ApiError(409, "nothing is taught yet: add examples, then POST /api/adapt")
        probabilities = await run_in_threadpool(self.model.predict, personal, image)
        best = int(np.argmax(probabilities))
        return JSONResponse(
            {
                "class": personal.class_names[best],
                "probability": probabilities[best],
                "probabilities": [
                    {"class": name, "probability": p}
                    for name, p in zip(personal.class_names, probabilities, strict=True)
                ],
                "stale": session.is_stale,
            }
        )

    async def export(self, request: Request, session: Session) -> Response:
        """``GET /api/export``: the personal model file, as ``metalearn predict`` reads it."""
        if session.personal is None:
            raise ApiError(409, "nothing is taught yet: teach before saving the personal model")
        data = await run_in_threadpool(self.model.export, session.personal)
        disposition = 'attachment; filename="personal.pt"'
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Content-Disposition": disposition},
        )

    async def load(self, request: Request, session: Session) -> Response:
        """``POST /api/import`` with a personal model file: its examples replace the session's."""
        body = await read_body(request, self.limits.max_model_bytes)
        support_x, support_y, names = await run_in_threadpool(self.model.load, body)
        images, labels = self._check_import(support_x, support_y, names)
        session.classes = {self._check_name(name): {} for name in names}
        for image, label in zip(images, labels, strict=True):
            session.add_example(names[label], image)
        return await self.adapt(request, session)

    def _check_import(self, x: Tensor, y: Tensor, names: list[str]) -> tuple[Any, list[int]]:
        """Return a stored support set as uint8 images and labels, refusing what cannot fit."""
        shape = (self.model.channels, self.model.image_size, self.model.image_size)
        if tuple(x.shape[1:]) != shape:
            raise ApiError(
                409, f"the file's images are {tuple(x.shape[1:])}; this model takes {shape}"
            )
        labels = y.tolist()
        if len(labels) != len(x) or not set(labels) <= set(range(len(names))):
            raise ApiError(400, "the file's labels do not match its images and class names")
        limits = self.limits
        if (
            len(set(names)) > limits.max_classes
            or len(set(names)) != len(names)
            or any(labels.count(label) > limits.max_examples_per_class for label in set(labels))
        ):
            raise ApiError(422, "the file holds more classes or examples than a session may")
        images = (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        return images, labels


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"internal error: {exc}"}, status_code=500)


def create_app(model: ServedModel, limits: Limits | None = None) -> Starlette:
    """Return the ASGI app serving ``model``: the page under ``/`` and the API under ``/api``."""
    api = _Api(model, limits or Limits())
    routes = [
        ("/api/state", "GET", api.state),
        ("/api/classes", "POST", api.add_class),
        ("/api/classes/{name}", "DELETE", api.delete_class),
        ("/api/classes/{name}/examples", "POST", api.add_example),
        ("/api/classes/{name}/examples", "DELETE", api.clear_class),
        ("/api/classes/{name}/examples/{example_id:int}", "GET", api.get_example),
        ("/api/classes/{name}/examples/{example_id:int}", "DELETE", api.delete_example),
        ("/api/adapt", "POST", api.adapt),
        ("/api/predict", "POST", api.predict),
        ("/api/export", "GET", api.export),
        ("/api/import", "POST", api.load),
    ]

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    return Starlette(
        routes=[
            Route("/", page),
            *(Route(path, api.endpoint(h), methods=[m]) for path, m, h in routes),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
