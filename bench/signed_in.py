"""Signed-in calls: ``admin-get-experiment`` by a person signed in with the
Auth stand-in (publishable key + access token: the token verified, the role
and session looked up) against the same call with the secret key, over real
HTTP to the local stack served in this process (uvicorn in a thread).

Each round makes ``CALLS`` calls per side on one keep-alive connection each,
interleaved call by call (A B, B A, …) so the machine's drifts hit both
sides alike; the verdict is the median of the per-round ratios (signed-in /
secret-key time per call).
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import psycopg
import uvicorn

from bench import fixtures
from bench.harness import BenchError, Result, progress
from devstack import auth_users
from devstack.keys import LocalKeys
from devstack.server import base_url, build_app, listen

KEY = "bench-signed-in"
CALLS = 200  # per side and round
WARMUP = 50
PASSWORD = "bench-password-" + uuid.uuid4().hex[:8]
TARGET = 1.5


class PairedResult(Result):
    """Judged by the median of the per-round ratios (rounds are paired)."""

    @property
    def ratio(self) -> float:
        return statistics.median(b / a for a, b in zip(self.baseline, self.candidate, strict=True))


@contextmanager
def _stack(db_url: str, keys: LocalKeys) -> Iterator[str]:
    sock = listen("127.0.0.1", 0)
    url = base_url("127.0.0.1", sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(build_app(db_url, keys, url), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise BenchError("the local stack did not start")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def _admin_token(db_url: str, http: httpx.Client, keys: LocalKeys) -> str:
    email = f"bench-{uuid.uuid4().hex[:8]}@bench.test"
    with psycopg.connect(db_url) as conn:
        user_id, _ = auth_users.put_user(conn, email, PASSWORD)
        conn.execute("select public.rec_grant_admin(%s, 'viewer', %s::uuid)", [user_id, fixtures.ADMIN])
        fixtures.create_active_experiments(conn, [KEY])
        conn.commit()
    response = http.post(
        "/auth/v1/token",
        params={"grant_type": "password"},
        json={"email": email, "password": PASSWORD},
        headers={"apikey": keys.publishable},
    )
    if response.status_code != 200:
        raise BenchError(f"sign-in failed: {response.status_code} {response.text[:200]}")
    token: str = response.json()["access_token"]
    return token


def _caller(client: httpx.Client) -> Callable[[], float]:
    def one_call_ms() -> float:
        start = time.perf_counter()
        response = client.post("/functions/v1/admin-get-experiment", json={"key": KEY})
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise BenchError(f"admin-get-experiment: {response.status_code} {response.text[:200]}")
        return elapsed

    return one_call_ms


def _interleaved(a: Callable[[], float], b: Callable[[], float], calls: int) -> tuple[float, float]:
    """Mean ms per call of each side over ``calls`` interleaved pairs."""
    total_a = total_b = 0.0
    for n in range(calls):
        if n % 2 == 0:
            total_a += a()
            total_b += b()
        else:
            total_b += b()
            total_a += a()
    return total_a / calls, total_b / calls


def bench_signed_in(db_url: str, rounds: int) -> Result:
    keys = LocalKeys()
    with _stack(db_url, keys) as url, httpx.Client(base_url=url, timeout=30) as http:
        token = _admin_token(db_url, http, keys)
        session_headers = {"apikey": keys.publishable, "authorization": f"Bearer {token}"}
        with (
            httpx.Client(base_url=url, headers={"apikey": keys.secret}, timeout=30) as secret_client,
            httpx.Client(base_url=url, headers=session_headers, timeout=30) as session_client,
        ):
            secret, signed_in = _caller(secret_client), _caller(session_client)
            _interleaved(secret, signed_in, WARMUP)
            a: list[float] = []
            b: list[float] = []
            for r in range(rounds):
                x, y = _interleaved(secret, signed_in, CALLS)
                a.append(x)
                b.append(y)
                progress(
                    f"   signed_in round {r + 1}/{rounds}: secret key {x:.2f} ms, signed in {y:.2f} ms, "
                    f"ratio {y / x:.2f}"
                )
    return PairedResult(
        name="signed_in",
        title="admin-get-experiment signed in (publishable key + access token) vs the secret key",
        baseline_label="POST /functions/v1/admin-get-experiment, apikey: secret key",
        candidate_label="the same, apikey: publishable key, Authorization: Bearer <ES256 access token>",
        unit="ms",
        baseline=a,
        candidate=b,
        ratio_label="median of per-round signed-in/secret time",
        target=TARGET,
        higher_is_better=False,
        notes=[
            f"local stack in this process over HTTP (keep-alive), {CALLS} calls per side and round, "
            f"interleaved call by call, after {WARMUP} warm-up pairs; mean ms per call; a viewer's role "
            "and live session checked in one lookup, run concurrently with the read"
        ],
    )
