import socket
from collections.abc import Callable, Iterator

import pytest


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable]:
    """Launch a demo on a free loopback port, with the app's safe launch settings; closed at teardown.

    Returns a function ``serve(demo) -> url``.
    """
    from deblur_demo.app import launch

    running = []

    def start(demo) -> str:
        url = launch(demo, host="127.0.0.1", port=free_port(), block=False)
        running.append(demo)
        return url

    yield start
    for demo in running:
        demo.close()
