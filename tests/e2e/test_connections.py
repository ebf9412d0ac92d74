"""How the stack's server treats its TCP connections."""

from __future__ import annotations

import asyncio
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


CLIENTS = 16
REQUESTS_PER_CLIENT = 200  # 3,200 requests in all, every one on its client's one connection


def _client_port(response: httpx.Response) -> int:
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


async def test_16_keep_alive_clients_through_thousands_of_requests(e2e_stack: E2EStack) -> None:
    """Each client holds one reused connection and mixes what a recommender
    and a dashboard send: RPCs, health checks, function calls."""
    secret = {"apikey": e2e_stack.keys.secret}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def one_client(n: int) -> tuple[list[str], set[int]]:
        errors: list[str] = []
        ports: set[int] = set()
        async with httpx.AsyncClient(base_url=e2e_stack.url, timeout=60, limits=limits) as http:
            for i in range(REQUESTS_PER_CLIENT):
                try:
                    if i % 10 == 9:
                        response = await http.post("/functions/v1/admin-whoami", json={}, headers=secret)
                    elif i % 2:
                        response = await http.get("/health")
                    else:
                        user = f"00000000-0000-4000-8000-{n:04d}{i:08d}"
                        response = await http.post(
                            "/rest/v1/rpc/rec_assign_variants", json={"user_id": user}, headers=secret
                        )
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                    ports.add(_client_port(response))
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
        return errors, ports

    results = await asyncio.gather(*(one_client(n) for n in range(CLIENTS)))
    errors = [e for errs, _ in results for e in errs]
    assert errors == [], f"{len(errors)} of {CLIENTS * REQUESTS_PER_CLIENT} failed: {errors[:5]}"
    assert all(len(ports) == 1 for _, ports in results), "a connection was dropped and reopened"


async def test_an_idle_connection_outlasts_the_clients_own_expiry(e2e_stack: E2EStack) -> None:
    """The server must never close an idle connection a client may still
    reuse: it keeps it past httpx's default idle expiry (5 s), so the client
    is always the one that closes. (With both at 5 s a request sent as the
    server closes is answered with a reset: httpx.ReadError.)"""
    server_keep_alive = e2e_stack.server.config.timeout_keep_alive
    assert server_keep_alive > httpx.Limits().keepalive_expiry  # type: ignore[operator]
    limits = httpx.Limits(max_connections=1, keepalive_expiry=server_keep_alive)
    async with httpx.AsyncClient(base_url=e2e_stack.url, timeout=30, limits=limits) as http:
        first = await http.get("/health")
        port = _client_port(first)
        await asyncio.sleep(6)  # idle past httpx's expiry (and uvicorn's default keep-alive)
        second = await http.get("/health")
        assert (first.status_code, second.status_code) == (200, 200)
        assert _client_port(second) == port, "the server closed the idle connection"
