"""The server's side of a sandbox's control socket: a request the init answers at once."""

from __future__ import annotations

import asyncio
import socket

import pytest

from e2b_local import sandbox


def test_request_sent_whole_before_the_init_hangs_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """The init may read a small request, answer and close before the server's next step;
    a request sent whole in one call must not then fail (it did: send(b"") raised EPIPE)."""
    server, init = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server.setblocking(False)
    real_send_fds = socket.send_fds
    got: list[bytes] = []

    def send_then_init_answers(sock, buffers, fds, *args):  # type: ignore[no-untyped-def]
        sent = real_send_fds(sock, buffers, fds, *args)
        got.append(init.recv(1 << 16))
        init.close()
        return sent

    monkeypatch.setattr(socket, "send_fds", send_then_init_answers)
    asyncio.run(sandbox._send_fds(server, b'{"op": "signal"}\n', []))
    server.close()
    assert got == [b'{"op": "signal"}\n']
