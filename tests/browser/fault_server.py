"""web/serve.py with fault injection, for the storage tests: a request log, HTTP errors, a
connection dropped (or held) in the middle of a body, files served with other bytes, and a
"down" switch (every connection closed without an answer, like a network that is off).

    faults = Faults()
    url = start_fault_server(root, faults)           # a daemon thread; faults.stop() ends it
    faults.fail(path, 500)                           # the next request of path gets HTTP 500
    faults.hold(path, nbytes, then="drop")           # sends nbytes, waits for faults.release()
    faults.replace[path] = b"..."                    # served instead of the file, until removed
    faults.down = True
Paths are relative to the root, without a leading slash: "models/<id>/model.onnx".
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from serve import IntabHandler, make_server


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[str] = []            # every request, in order
        self.completed: list[str] = []      # requests answered with a whole 200 body
        self.rules: dict[str, list[tuple]] = {}
        self.replace: dict[str, bytes] = {}
        self.down = False
        self.held = threading.Event()       # set when a hold() rule is holding a body
        self.go = threading.Event()         # set by release()
        self.server = None

    def fail(self, path: str, status: int) -> None:
        self.rules.setdefault(path, []).append(("status", status))

    def hold(self, path: str, nbytes: int, then: str = "continue") -> None:
        """The next request of path: send nbytes of the body, then wait for release() and
        either send the rest ("continue") or close the connection ("drop")."""
        self.held.clear()
        self.go.clear()
        self.rules.setdefault(path, []).append(("hold", nbytes, then))

    def release(self) -> None:
        self.go.set()

    def requests(self, prefix: str = "") -> list[str]:
        with self.lock:
            return [p for p in self.log if p.startswith(prefix)]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()
            self.completed.clear()

    def stop(self) -> None:
        self.go.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()


class FaultHandler(IntabHandler):
    faults: Faults

    def _abort(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:
        f = self.faults
        path = unquote(urlsplit(self.path).path).lstrip("/")
        with f.lock:
            f.log.append(path)
            down = f.down
            rules = f.rules.get(path)
            rule = rules.pop(0) if rules else None
            body = f.replace.get(path)
        if down:
            self._abort()
            return
        if rule and rule[0] == "status":
            self.send_error(rule[1])
            return
        if body is not None:
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(path))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with f.lock:
                f.completed.append(path)
            return
        if rule and rule[0] == "hold":
            _, nbytes, then = rule
            src = self.send_head()
            if src is None:
                return
            try:
                left = nbytes
                while left > 0:
                    chunk = src.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
                self.wfile.flush()
                f.held.set()
                f.go.wait(300)
                if then == "drop":
                    self._abort()
                    return
                self.copyfile(src, self.wfile)
            except (ConnectionResetError, BrokenPipeError):
                return
            finally:
                src.close()
            with f.lock:
                f.completed.append(path)
            return
        try:
            super().do_GET()
        except (ConnectionResetError, BrokenPipeError):
            return  # the page went away (Retry ends the worker and its downloads)
        with f.lock:
            f.completed.append(path)


def start_fault_server(root: Path, faults: Faults) -> str:
    handler = type("Handler", (FaultHandler,), {"faults": faults})
    server = make_server(Path(root), "127.0.0.1", 0, handler_class=handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    faults.server = server
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"
