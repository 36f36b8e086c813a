"""Device names of the ``--device`` option: checked, and resolved against this machine."""

from __future__ import annotations

import re

import torch

__all__ = ["DEVICE_CHOICES", "DeviceError", "check_device_name", "resolve_device"]

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class DeviceError(ValueError):
    """A device name is malformed or names a device this machine does not have."""


def check_device_name(name: str) -> str:
    """Return ``name`` if it is one of :data:`DEVICE_CHOICES`.

    Raises:
        DeviceError: naming the value and the choices.
    """
    if not _PATTERN.match(name):
        raise DeviceError(f"--device={name}: expected {DEVICE_CHOICES}")
    return name


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str) -> torch.device:
    """Return the device ``name`` means on this machine.

    ``auto`` is the first available of cuda, mps and cpu.

    Raises:
        DeviceError: if ``name`` is malformed or this machine lacks that device.
    """
    check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "has no CUDA support" if torch.version.cuda is None else "finds no CUDA device"
            raise DeviceError(
                f"--device={name}: this PyTorch ({torch.__version__}) {build}; "
                "use --device=cpu or --device=auto"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"--device={name}: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}; use one of those or --device=auto"
            )
    if device.type == "mps" and not _mps_available():
        raise DeviceError(f"--device={name}: MPS is not available here; use --device=cpu or auto")
    return device
