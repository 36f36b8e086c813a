"""Per-browser state of ``metalearn serve``: each session's classes, examples and taught model.

A session is named by a random token kept in a cookie. The store holds at most ``max_sessions``
sessions and forgets one unused for ``ttl_seconds`` (the least recently used goes first when
full), so a server left running does not grow without bound. Examples are kept as the
preprocessed ``uint8`` arrays the learner sees, one byte per pixel.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Session", "SessionStore"]


@dataclass
class Session:
    """One browser's classes and examples, and the model taught from them.

    Attributes:
        classes: class name -> ``{example id: (channels, size, size) uint8 array}``, in the
            order the classes were added (which is the label order when taught).
        personal: the ``Personalized`` model of the last teach, or ``None``.
        version: bumped on every change of the examples, so that a taught model can tell
            whether it is stale.
        taught_version: ``version`` when ``personal`` was taught.
    """

    classes: dict[str, dict[int, NDArray[np.uint8]]] = field(default_factory=dict)
    personal: Any = None
    version: int = 0
    taught_version: int = -1
    next_id: int = 0

    def add_example(self, name: str, image: NDArray[np.uint8]) -> int:
        """Store ``image`` under class ``name`` (which must exist) and return its id."""
        example_id = self.next_id
        self.next_id += 1
        self.classes[name][example_id] = image
        self.changed()
        return example_id

    def changed(self) -> None:
        """Mark the examples as changed since the last teach."""
        self.version += 1

    @property
    def is_stale(self) -> bool:
        """Whether the examples changed after the model was taught."""
        return self.version != self.taught_version

    def n_examples(self) -> int:
        """Return the number of examples over all classes."""
        return sum(len(examples) for examples in self.classes.values())


class SessionStore:
    """Sessions by token, bounded in number and in idle time (LRU with a time-to-live).

    Args:
        max_sessions: sessions kept at most; adding one more forgets the least recently used.
        ttl_seconds: a session unused for this long is forgotten.
        clock: seconds, monotonic (injected by the tests).
    """

    def __init__(
        self,
        max_sessions: int = 64,
        ttl_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sessions, self.ttl_seconds, self.clock = max_sessions, ttl_seconds, clock
        self._sessions: OrderedDict[str, tuple[float, Session]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, token: str | None) -> tuple[str, Session]:
        """Return ``(token, session)``: the live session of ``token``, else a new one."""
        now = self.clock()
        self._expire(now)
        if token is not None and token in self._sessions:
            _, session = self._sessions.pop(token)
        else:
            token, session = secrets.token_urlsafe(24), Session()
            while len(self._sessions) >= self.max_sessions:
                self._sessions.popitem(last=False)
        self._sessions[token] = (now, session)
        return token, session

    def _expire(self, now: float) -> None:
        # Oldest first: the dict is kept in order of last use.
        while self._sessions:
            token, (last_used, _) = next(iter(self._sessions.items()))
            if now - last_used < self.ttl_seconds:
                break
            del self._sessions[token]
