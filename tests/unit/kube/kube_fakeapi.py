"""A small API server on 127.0.0.1 that answers what a test scripts, for kube.py's tests."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeApi:
    """Answers what a test scripts: a list, watch streams (one per watch call), patches."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.list_body: dict[str, Any] = {
            "kind": "PodList",
            "metadata": {"resourceVersion": "1"},
            "items": [],
        }
        self.watch_streams: list[list[dict[str, Any]]] = []
        # When set, lists are paginated: continue token ("" first) -> its pages, served in
        # turn (the last one again and again); a token not here is 410 Expired.
        self.list_pages: dict[str, list[dict[str, Any]]] = {}
        self.list_delay = 0.0
        self.status = 200
        self.peers: set[tuple[str, int]] = set()  # client (address, port): one per connection
        self.close_after_answer = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if api.close_after_answer:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                api.requests.append(("GET", self.path, dict(self.headers), None))
                api.peers.add(self.client_address)
                if "watch=true" in self.path:
                    events = api.watch_streams.pop(0) if api.watch_streams else []
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for event in events:
                        line = (json.dumps(event) + "\n").encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                    if not api.watch_streams:
                        time.sleep(0.2)  # the last stream lingers, like a quiet watch
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if api.status != 200:
                    self._send(
                        api.status,
                        {"kind": "Status", "reason": "Forbidden", "message": "pods is forbidden"},
                    )
                    return
                time.sleep(api.list_delay)
                if api.list_pages:
                    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                    pages = api.list_pages.get(query.get("continue", ""))
                    if not pages:
                        self._send(410, {"kind": "Status", "reason": "Expired", "code": 410})
                        return
                    self._send(200, pages.pop(0) if len(pages) > 1 else pages[0])
                    return
                self._send(200, api.list_body)

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length", "0"))
                return json.loads(self.rfile.read(n)) if n else None

            def do_PATCH(self) -> None:
                body = self._body()
                api.requests.append(("PATCH", self.path, dict(self.headers), body))
                self._send(200, {"patched": body})

            def do_POST(self) -> None:
                body = self._body()
                api.requests.append(("POST", self.path, dict(self.headers), body))
                self._send(201, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
