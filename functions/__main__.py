"""``python -m functions``: check the env, then serve the app with uvicorn.

HOST (default 0.0.0.0) and PORT (default 8000) choose where to listen.
"""

import logging
import os
import sys

import uvicorn

from shared.body_timeout import timeout_from_env
from shared.config import ConfigError, Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        Settings.from_env()
        timeout_from_env()
    except ConfigError as exc:
        sys.exit(f"functions: {exc}")
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "8000"))
    uvicorn.run("functions.app:app", host=host, port=port)


if __name__ == "__main__":
    main()
