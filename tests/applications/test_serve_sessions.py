"""The session store of `metalearn serve`: one session per token, bounded by count and idle time."""

from __future__ import annotations

import numpy as np

from metalearn.applications.serve.sessions import SessionStore


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_token_finds_its_session_and_an_unknown_one_gets_a_new_session():
    store = SessionStore(clock=Clock())
    token, session = store.get(None)
    assert store.get(token) == (token, session)
    other, fresh = store.get("forged-token")
    assert other not in (token, "forged-token")
    assert fresh is not session
    assert len(store) == 2


def test_the_least_recently_used_session_goes_first_when_full():
    store = SessionStore(max_sessions=2, clock=Clock())
    a, _ = store.get(None)
    b, _ = store.get(None)
    store.get(a)  # a is now used more recently than b
    c, _ = store.get(None)
    assert len(store) == 2
    assert store.get(a)[0] == a
    assert store.get(c)[0] == c
    assert store.get(b)[0] != b  # b was forgotten


def test_a_session_idle_past_its_time_to_live_is_forgotten():
    clock = Clock()
    store = SessionStore(ttl_seconds=60, clock=clock)
    a, session = store.get(None)
    session.classes["x"] = {}
    clock.now = 59
    assert store.get(a) == (a, session)  # using it renews it
    clock.now = 118
    b, _ = store.get(None)
    assert len(store) == 2
    clock.now = 178.5
    assert store.get(a)[0] != a
    assert store.get(b)[0] != b


def test_a_changed_session_is_stale_until_taught_again():
    _, session = SessionStore().get(None)
    session.classes["x"] = {}
    first = session.add_example("x", np.zeros((1, 2, 2), np.uint8))
    second = session.add_example("x", np.zeros((1, 2, 2), np.uint8))
    assert (first, second) == (0, 1)
    assert session.is_stale
    session.taught_version = session.version
    assert not session.is_stale
    session.changed()
    assert session.is_stale
