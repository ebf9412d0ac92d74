"""``python -m functions``: check the env, then serve the app with uvicorn.

HOST (default 0.0.0.0) and PORT (default 8000) choose where to listen.
"""

import logging
import os
import sys

import uvicorn

from shared.body_timeout import timeout_from_env
from shared.config import ConfigError, Settings
from shared.header_timeout import server_options


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        Settings.from_env()
        read_timeout = timeout_from_env()
    except ConfigError as exc:
        sys.exit(f"functions: {exc}")
    host = os.environ.get("HOST", "0.0.0.0")
    raw_port = os.environ.get("PORT", "8000")
    if not (raw_port.isascii() and raw_port.isdigit() and int(raw_port) <= 65535):
        sys.exit(f"functions: PORT must be a TCP port number (0-65535), got {raw_port!r}")
    port = int(raw_port)
    # Request heads get the same read timeout as bodies, and idle keep-alive
    # connections outlast clients' own expiry (shared.header_timeout).
    uvicorn.run("functions.app:app", host=host, port=port, **server_options(read_timeout))


if __name__ == "__main__":
    main()
