"""A scripted stand-in for the Anthropic Messages API, for end-to-end tests.

Why: the e2e tests drive the real Claude Code client, which needs a model. This
fake listens on 127.0.0.1 (an ephemeral port, never any other address), answers
`POST /v1/messages` from a script the test passes in, and records every request
it received so the test can assert on what the client sent (the expanded
SKILL.md body, tool results, hook output, ...).

Contract:
- The script is a list of turns, consumed one per *main* request (a request the
  client makes for the agent loop). A turn is
    * a str: one text block, stop_reason "end_turn";
    * a dict: one content block (see `text` and `tool_use`);
    * a list of blocks: stop_reason "tool_use" when any block is a tool_use;
    * a callable taking the request body (dict) and returning any of the above,
      so a turn can depend on the last request, e.g. read a tool_result.
- Side requests (title generation, quota probes, and any request that offers no
  tools) never consume the script; `side_reply(body)` answers them (default: a
  short text). `is_main(body)` decides which is which; both can be replaced.
- `"stream": true` gets server-sent events; otherwise a plain JSON message.
- Once the script is exhausted, main requests get a text turn and
  `exhausted` becomes True; an exception in a turn function is kept in
  `errors` (the client then gets a text turn, so it ends instead of hanging).
  A test should assert both are empty/False.
"""

import http.server
import itertools
import json
import threading

__all__ = [
    "FakeAnthropic",
    "text",
    "tool_use",
    "tool_results",
    "last_tool_result_text",
    "system_text",
    "messages_text",
    "default_is_main",
]

_ids = itertools.count(1)


def text(s):
    """A text content block."""
    return {"type": "text", "text": s}


def tool_use(name, input, id=None):
    """A tool_use content block; ids are unique within the process."""
    return {"type": "tool_use", "id": id or "toolu_fake_%04d" % next(_ids),
            "name": name, "input": input}


def _flatten(content):
    """The text of a message `content` (str or list of blocks), tool results included."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            parts.append(_flatten(block.get("content")))
    return "\n".join(parts)


def system_text(body):
    """The system prompt of a request as one string (it may be a list of blocks)."""
    return _flatten(body.get("system") or "")


def messages_text(body):
    """Every message's text (user and assistant, tool results included) as one string."""
    return "\n".join(_flatten(m.get("content")) for m in body.get("messages", []))


def tool_results(body):
    """The tool_result blocks sent after the last assistant message, in order.

    The client may append further messages after the results (it adds
    role "system" reminders), so the last message is not necessarily them.
    """
    found = []
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "assistant":
            break
        content = message.get("content")
        if isinstance(content, list):
            found[:0] = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    return found


def last_tool_result_text(body):
    """The text of the last tool_result in the request ('' when there is none)."""
    results = tool_results(body)
    return _flatten(results[-1].get("content")) if results else ""


def default_is_main(body):
    """A request is part of the agent loop when it offers the model a Bash tool.

    Side requests of the client (session titles, quota probes, summaries) carry
    no tools or a different set, and must not consume the script.
    """
    return any(t.get("name") == "Bash" for t in body.get("tools") or [])


def default_side_reply(body):
    """A neutral answer for side requests."""
    return "ok"


class FakeAnthropic:
    """A threaded HTTP server on 127.0.0.1 serving a scripted conversation.

    Use as a context manager; `base_url` is what ANTHROPIC_BASE_URL should be.
    `requests` holds every request as {"method", "path", "body", "main"} in
    arrival order; `main_requests()` filters the agent-loop ones.
    """

    def __init__(self, script, *, is_main=default_is_main, side_reply=default_side_reply,
                 model="claude-fake-1"):
        self._script = list(script)
        self._next = 0
        self._is_main = is_main
        self._side_reply = side_reply
        self._model = model
        self._lock = threading.Lock()
        self.requests = []
        self.errors = []
        self.exhausted = False
        self._server = None
        self._thread = None

    # -- lifecycle -------------------------------------------------------
    def start(self):
        handler = _make_handler(self)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self):
        host, port = self._server.server_address[:2]
        return "http://%s:%d" % (host, port)

    # -- inspection ------------------------------------------------------
    def main_requests(self):
        with self._lock:
            return [r["body"] for r in self.requests if r["main"]]

    def turns_used(self):
        with self._lock:
            return self._next

    # -- replies ---------------------------------------------------------
    def _record(self, method, path, body, main):
        with self._lock:
            self.requests.append({"method": method, "path": path, "body": body, "main": main})

    def _reply_for(self, body):
        """The content blocks answering one /v1/messages request."""
        try:
            main = bool(self._is_main(body))
        except Exception as exc:  # a broken classifier must fail the test, not hang it
            self.errors.append("is_main: %r" % (exc,))
            main = False
        self._record("POST", "/v1/messages", body, main)
        if not main:
            return _blocks(self._side_reply(body))
        with self._lock:
            if self._next >= len(self._script):
                self.exhausted = True
                turn = None
            else:
                turn = self._script[self._next]
                self._next += 1
        if turn is None:
            return [text("(fake model: script exhausted)")]
        try:
            if callable(turn):
                turn = turn(body)
            return _blocks(turn)
        except Exception as exc:
            self.errors.append("turn %d: %r" % (self._next, exc))
            return [text("(fake model: turn failed: %r)" % (exc,))]

    def _message(self, blocks, body):
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        return {"id": "msg_fake_%04d" % next(_ids), "type": "message", "role": "assistant",
                "model": body.get("model") or self._model, "content": blocks,
                "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 10,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def _blocks(turn):
    """Normalise a turn (str, block, list of blocks) to a list of blocks."""
    if isinstance(turn, str):
        return [text(turn)]
    if isinstance(turn, dict):
        return [turn]
    blocks = list(turn)
    if not blocks or not all(isinstance(b, dict) and "type" in b for b in blocks):
        raise ValueError("a turn must be a str, a content block or a non-empty list of blocks")
    return blocks


def _sse_events(message):
    """The server-sent events that stream `message` the way the real API does."""
    head = dict(message, content=[], stop_reason=None)
    head["usage"] = dict(message["usage"], output_tokens=1)
    yield "message_start", {"type": "message_start", "message": head}
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "text", "text": ""}}
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "text_delta", "text": block["text"]}}
        elif block["type"] == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": start}
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "input_json_delta",
                                                    "partial_json": json.dumps(block["input"])}}
        else:
            raise ValueError("unsupported block type %r" % block["type"])
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                            "usage": {"output_tokens": message["usage"]["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}


def _make_handler(fake):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection; the stream ends at close

        def log_message(self, *args):  # keep test output clean
            pass

        def _send_json(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw.decode() or "null")
            except ValueError:
                return None

        def do_GET(self):
            fake._record("GET", self.path, None, False)
            self._send_json(404, {"type": "error",
                                  "error": {"type": "not_found_error", "message": "fake: no such path"}})

        def do_HEAD(self):
            fake._record("HEAD", self.path, None, False)
            self.send_response(200)
            self.end_headers()

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            body = self._read_body()
            if path == "/v1/messages/count_tokens":
                fake._record("POST", path, body, False)
                self._send_json(200, {"input_tokens": 100})
                return
            if path != "/v1/messages" or not isinstance(body, dict):
                fake._record("POST", path, body, False)
                self._send_json(404, {"type": "error",
                                      "error": {"type": "not_found_error", "message": "fake: no such path"}})
                return
            message = fake._message(fake._reply_for(body), body)
            if not body.get("stream"):
                self._send_json(200, message)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for event, data in _sse_events(message):
                self.wfile.write(("event: %s\ndata: %s\n\n" % (event, json.dumps(data))).encode())
            self.wfile.flush()

    return Handler
