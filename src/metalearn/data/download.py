"""Download the official Omniglot archives into a data root (atomically, with the stdlib)."""

from __future__ import annotations

import logging
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

from metalearn.data.omniglot_archive import ARCHIVES, DOWNLOAD_URL
from metalearn.errors import DatasetError

__all__ = ["download_omniglot"]

logger = logging.getLogger(__name__)


def download_omniglot(
    root: str | os.PathLike[str],
    *,
    base_url: str = DOWNLOAD_URL,
    overwrite: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download ``images_background.zip`` and ``images_evaluation.zip`` into ``root/omniglot``.

    Each archive is written to a temporary file beside its target, checked to be a zip file
    and then moved into place, so an interrupted download never leaves a partial archive.
    Archives already present are kept unless ``overwrite``. Their content is validated when
    they are loaded (:func:`~metalearn.data.load_omniglot`).

    Args:
        root: the data root; ``root/omniglot`` is created if needed.
        base_url: the folder URL holding the two archives.
        overwrite: download even if an archive is already there.
        timeout: seconds to wait for the server on each request.

    Returns:
        The ``root/omniglot`` folder.

    Raises:
        DatasetError: if a download fails or is not a zip archive (the message names the URL).
    """
    folder = Path(root).expanduser() / "omniglot"
    folder.mkdir(parents=True, exist_ok=True)
    for spec in ARCHIVES:
        target = folder / spec.filename
        if target.is_file() and not overwrite:
            logger.info("keeping %s", target)
            continue
        _fetch(f"{base_url.rstrip('/')}/{spec.filename}", target, timeout)
    return folder


def _fetch(url: str, target: Path, timeout: float) -> None:
    partial = target.with_name(f".{target.name}.part")
    logger.info("downloading %s to %s", url, target)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as f:
            shutil.copyfileobj(response, f)
            f.flush()
            os.fsync(f.fileno())
        if not zipfile.is_zipfile(partial):
            raise DatasetError(f"{url} did not return a zip archive; check the URL")
        os.replace(partial, target)
    except OSError as exc:  # urllib.error.URLError is an OSError
        raise DatasetError(f"cannot download {url} ({exc}); check the URL and network") from exc
    finally:
        partial.unlink(missing_ok=True)
