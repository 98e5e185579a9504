import functools
import http.server
import threading

import pytest


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server on 127.0.0.1 (a free port) serving tmp_path/served; yields (folder, base URL, requests)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    requests = []
    original = server.finish_request

    def counting(request, client_address):
        requests.append(client_address)
        return original(request, client_address)

    server.finish_request = counting
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
