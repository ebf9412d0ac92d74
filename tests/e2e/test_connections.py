"""How the stack's server treats its TCP connections."""

from __future__ import annotations

import socket

import httpx

from tests.e2e.conftest import E2EStack


async def test_accepted_connections_have_tcp_nodelay(e2e_stack: E2EStack) -> None:
    """asyncio sets TCP_NODELAY on every TCP connection it accepts, as it does for
    `uvicorn --host/--port`; the stack's own listening socket must allow that."""
    async with httpx.AsyncClient(base_url=e2e_stack.url, timeout=30) as http:
        assert (await http.get("/health")).status_code == 200  # the connection stays open
        connections = list(e2e_stack.server.server_state.connections)
        assert connections
        for protocol in connections:
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
