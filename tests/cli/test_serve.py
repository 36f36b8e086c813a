"""`metalearn serve` on the command line: what it refuses before serving anything."""

from __future__ import annotations

import pytest

from metalearn.errors import ConfigError


def test_a_missing_run_is_a_one_line_error(run_cli):
    code, _, err = run_cli("serve", "no-such-run")
    assert code == 1
    assert err.startswith("error: ")
    assert "no-such-run" in err
    assert "Traceback" not in err


def test_a_port_out_of_range_is_a_usage_error(run_cli):
    code, _, err = run_cli("serve", "no-such-run", "--port", "70000")
    assert code == 2
    assert "--port 70000" in err


@pytest.mark.parametrize("preset", ["maml-sinusoid", "maml-rl-navigation"])
def test_only_image_classifiers_are_served(preset):
    from metalearn.cli.serve import served_model
    from metalearn.presets import get_preset

    with pytest.raises(ConfigError, match="personalizes image classifiers"):
        served_model(get_preset(preset), learner=None, invert=False)


def test_the_server_socket_is_tcp_so_that_asyncio_turns_nagle_off():
    # asyncio sets TCP_NODELAY only on connections of a socket made with IPPROTO_TCP; without
    # it every response waited 40 ms for the client's delayed ACK.
    import socket

    from metalearn.cli.serve import _listen

    with _listen("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[0] == "127.0.0.1"


def test_a_port_in_use_is_a_one_line_error():
    from metalearn.cli.serve import _listen
    from metalearn.errors import MetalearnError

    with _listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(MetalearnError, match=f"127.0.0.1:{port}.*choose another --port"):
            _listen("127.0.0.1", port)
