"""Distributed tests start worker processes (gloo, one thread each) with ``torchrun``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


class Launcher:
    """Starts the workers of a test: ``torchrun`` (standalone) or one plain process."""

    def __init__(self) -> None:
        self.env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "OMP_WAIT_POLICY": "PASSIVE",
            "LOGLEVEL": "WARNING",
            "PYTHONWARNINGS": "ignore",  # torchrun's own warnings are not the tests' concern
        }

    def torchrun(self, *args: str, nproc: int = 2, max_restarts: int = 0) -> list[str]:
        """The command line of ``torchrun`` with ``nproc`` workers on this machine."""
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            f"--max-restarts={max_restarts}",
            *args,
        ]

    def script(self, name: str) -> str:
        """The path of a worker script of this folder."""
        return str(HERE / name)

    def run(
        self, cmd: list[str], *, cwd: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd``; with ``check``, fail the test with its output when it exits non-zero."""
        done = subprocess.run(
            cmd, env=self.env, cwd=cwd, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done


@pytest.fixture(scope="session")
def launcher() -> Launcher:
    """Starts worker processes."""
    return Launcher()
