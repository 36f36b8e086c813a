"""``metalearn serve``: a local web page where a person teaches a trained run their own classes.

The web app lives in :mod:`metalearn.applications.serve`; this module loads the run, writes
its personal model files (:mod:`metalearn.personal_model`, the format of ``metalearn adapt``),
checks those handed back to it, and starts uvicorn. Starlette and uvicorn come with the
``serve`` extra.
"""

from __future__ import annotations

import argparse
import io
import socket
from pathlib import Path
from typing import Any, TypeGuard

import torch
from torch import Tensor

from metalearn.applications import Personalized
from metalearn.build import image_channels
from metalearn.cli.common import add_invert_argument, load_run, resolve_invert
from metalearn.config import RunConfig
from metalearn.errors import CheckpointError, ConfigError, MetalearnError
from metalearn.personal_model import FORMAT, payload_of, support_n_way

__all__ = ["add_parser", "run_serve", "served_model"]


def add_parser(subparsers: Any) -> None:
    """Register ``metalearn serve``."""
    serve = subparsers.add_parser(
        "serve", help="a local web page: draw a few examples of your classes, teach, try"
    )
    serve.add_argument("run_path", metavar="RUN", help="trained run folder or checkpoint")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    add_invert_argument(serve)
    serve.set_defaults(run=run_serve)


def served_model(config: RunConfig, learner: Any, *, invert: bool) -> Any:
    """Return the ``ServedModel`` of a loaded run, whose files ``metalearn predict`` reads.

    Raises:
        ConfigError: for a run that does not classify images (RL, regression).
    """
    from metalearn.applications.serve import ServedModel

    if config.data.dataset not in ("omniglot", "folder"):
        raise ConfigError(
            f"{config.name} is a {config.data.dataset} run: `serve` personalizes image "
            "classifiers (train an Omniglot or class-folder run)"
        )
    channels = image_channels(config)

    def export(personal: Personalized) -> bytes:
        buffer = io.BytesIO()
        torch.save(payload_of(config, personal, invert=invert, channels=channels), buffer)
        return buffer.getvalue()

    def load(data: bytes) -> tuple[Tensor, Tensor, list[str]]:
        return _read_support(data, config, learner, invert=invert, channels=channels)

    return ServedModel(
        learner=learner,
        name=config.name,
        image_size=config.data.image_size,
        channels=channels,
        invert=invert,
        n_way=support_n_way(config),
        export=export,
        load=load,
    )


def _read_support(
    data: bytes, config: RunConfig, learner: Any, *, invert: bool, channels: int
) -> tuple[Tensor, Tensor, list[str]]:
    """Return the support set of a personal model file made from this very run."""
    from metalearn.applications.serve import ApiError

    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for foreign bytes
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ApiError(400, f"cannot read the file as a personal model ({first_line})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ApiError(400, "the file is not a personal model (saved here or by `metalearn adapt`)")
    if not _same_weights(payload.get("learner"), learner.state_dict()):
        raise ApiError(
            409, f"the personal model was made from another run than {config.name}; serve that run"
        )
    if payload.get("invert") != invert or payload.get("channels") != channels:
        raise ApiError(409, "the personal model's images were read with other --invert/channels")
    x, y, names = payload.get("support_x"), payload.get("support_y"), payload.get("class_names")
    if not (_is_tensor(x, floating=True) and _is_tensor(y, floating=False) and y.dim() == 1):
        raise ApiError(400, "the personal model's support set is malformed")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ApiError(400, "the personal model's class names are malformed")
    return x.float(), y.long(), names


def _is_tensor(value: object, *, floating: bool) -> TypeGuard[Tensor]:
    return isinstance(value, Tensor) and value.is_floating_point() == floating


def _same_weights(stored: object, current: dict[str, Tensor]) -> bool:
    if not isinstance(stored, dict) or stored.keys() != current.keys():
        return False
    return all(
        isinstance(stored[key], Tensor)
        and stored[key].shape == value.shape
        and torch.equal(stored[key].to(value.device, value.dtype), value)
        for key, value in current.items()
    )


def _listen(host: str, port: int) -> socket.socket:
    """Return a socket listening on ``host:port``, or raise a one-line error naming them.

    The socket is made with protocol ``IPPROTO_TCP`` (as asyncio's own ``create_server`` makes
    it): asyncio turns Nagle's algorithm off only on connections of such a socket, and with it
    on, every response waits out the client's delayed ACK (40 ms on Linux).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise MetalearnError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise MetalearnError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port"
        ) from None
    return sock


def run_serve(args: argparse.Namespace) -> int:
    """Serve the page and the API until interrupted."""
    try:
        import uvicorn

        from metalearn.applications.serve import create_app
    except ImportError as exc:
        raise ConfigError(
            f"`metalearn serve` needs the serve extra ({exc.name} is missing): "
            "pip install 'metalearn[serve]'"
        ) from None
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number (0 to 65535; 0: any free one)")
    if not Path(args.run_path).exists():
        raise CheckpointError(f"no run at {args.run_path}: give a trained run folder")
    config, learner, _ = load_run(args.run_path, overrides=["--device=cpu"])
    app = create_app(served_model(config, learner, invert=resolve_invert(config, args.invert)))
    sock = _listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {config.name} at http://{shown}:{port}/ (Ctrl+C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
    return 0
