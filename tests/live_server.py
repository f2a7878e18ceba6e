"""The real app under uvicorn in a thread on a free loopback port, with the settings `emolens serve` uses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def live(app: Any, **config: Any) -> Iterator[int]:
    """Serve `app` until the block ends; yields the port. `config` goes to uvicorn.Config."""
    import uvicorn

    from emolens.serving.server import uvicorn_options

    config.setdefault("log_level", "warning")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", **uvicorn_options(app.state.limits), **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
