"""A small real HTTP server on loopback that answers like central (protocol v1).

Not a database mock: it serves real HTTP on a real port, keeps each device's last
applied seq, skips replays, refuses gaps with 409 and pages pulls, so the laptop's
client is tested over the wire. A script of faults (status codes, dropped
connections, slow answers, a drop after the batch was applied) can be queued.
"""
from __future__ import annotations

import json
import socket
import threading
import time

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from lapsync import protocol

TOKEN = "device-token-0123456789"


class FakeCentral:
    """Central's push/pull semantics in memory, behind a real werkzeug server."""

    def __init__(self, token: str = TOKEN):
        self.token = token
        self.applied: dict[str, int] = {}      # device id -> last applied seq
        self.received: list[dict] = []         # applied changes, in order
        self.requests: list[tuple[str, dict | None]] = []  # (path, JSON body)
        self.pull_changes: list[dict] = []     # {"entity", "id", "data"}; cursor = index + 1
        self.reject_ids: set[str] = set()      # ids refused for good ("rejected")
        self.script: list[tuple[str, object]] = []  # (path suffix, action) faults, in order
        self.clock_offset_ms = 0               # server_time = this machine's clock + offset
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def fault(self, path: str, action) -> None:
        """Queue a fault for the next request to PATH ('push' or 'pull').

        action: an int status (answered with a JSON error), a (status, body) pair,
        'drop' (close the connection unanswered), 'commit_drop' (apply, then drop),
        or ('sleep', seconds) before answering normally.
        """
        self.script.append((path, action))

    def next_fault(self, path: str):
        """Pop the first queued fault for this path."""
        with self.lock:
            for i, (wanted, action) in enumerate(self.script):
                if path.endswith(wanted):
                    del self.script[i]
                    return action
        return None

    def wsgi(self, environ, start_response):
        """Serve one request."""
        request = Request(environ)
        body = request.get_json(silent=True) if request.method == "POST" else None
        with self.lock:
            self.requests.append((request.path, body))
        action = self.next_fault(request.path)
        if isinstance(action, tuple) and action[0] == "sleep":
            time.sleep(action[1])
            action = None
        if action == "drop":
            return self.drop(environ, start_response)
        if isinstance(action, int):
            action = (action, {"error": "scripted", "message": f"scripted {action}"})
        if isinstance(action, tuple):
            return Response(json.dumps(action[1]), action[0], mimetype="application/json")(
                environ, start_response)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self.json({"error": "invalid_token", "message": "unknown token"}, 401)(
                environ, start_response)
        if request.path == protocol.API_PREFIX + "/push":
            response = self.push(body)
        elif request.path == protocol.API_PREFIX + "/pull":
            response = self.pull(int(request.args["cursor"]), int(request.args.get("limit", 1000)))
        else:
            response = self.json({"error": "not_found", "message": "no such path"}, 404)
        if action == "commit_drop":
            return self.drop(environ, start_response)
        return response(environ, start_response)

    @staticmethod
    def json(body: dict, status: int = 200) -> Response:
        """Answer JSON."""
        return Response(json.dumps(body), status, mimetype="application/json")

    @staticmethod
    def drop(environ, start_response):
        """Close the connection without an answer."""
        environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
        start_response("500 dropped", [])
        return [b""]

    def push(self, body: dict) -> Response:
        """Apply a batch once: skip replays, refuse gaps, acknowledge, list rejects."""
        validate = getattr(protocol, "validate_push", None)
        if validate is not None:
            try:
                validate(body)
            except Exception as exc:  # the contract's validator says no
                return self.json({"error": getattr(exc, "code", "invalid"), "message": str(exc)}, 422)
        with self.lock:
            device, last = body["device_id"], self.applied.get(body["device_id"], 0)
            changes = [c for c in body["changes"] if c["seq"] > last]
            if changes and changes[0]["seq"] != last + 1:
                return self.json({"error": "seq_gap", "message": f"expected seq {last + 1}",
                                  "acked_seq": last, "resume_from": last + 1}, 409)
            rejected = []
            for change in changes:
                if change["id"] in self.reject_ids:
                    rejected.append({"seq": change["seq"], "error": "scripted_reject",
                                     "message": "refused for good"})
                else:
                    self.received.append(change)
                last = change["seq"]
            self.applied[device] = last
        return self.json({"acked_seq": last, "server_time": self.server_time(),
                          "rejected": rejected})

    def server_time(self) -> int:
        """Return this central's clock in epoch ms."""
        return int(time.time() * 1000) + self.clock_offset_ms

    def pull(self, cursor: int, limit: int) -> Response:
        """Serve one page of pull_changes after the cursor."""
        page = self.pull_changes[cursor:cursor + limit]
        changes = [{"cursor": cursor + i + 1, **change} for i, change in enumerate(page)]
        next_cursor = cursor + len(page)
        return self.json({"protocol": protocol.PROTOCOL_VERSION, "server_time": self.server_time(),
                          "next_cursor": next_cursor, "more": next_cursor < len(self.pull_changes),
                          "changes": changes})

    def pushed(self, path_suffix: str = "/push") -> list[dict]:
        """Return the bodies of the push requests seen."""
        return [body for path, body in self.requests if path.endswith(path_suffix)]
