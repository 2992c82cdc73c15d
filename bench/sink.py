#!/usr/bin/env python3
"""Byte-counting helpers for bench/load.sh.

    sink.py serve PORT_FILE   HTTP/1.1 upload sink on 127.0.0.1 (port 0; the
                              bound port is written to PORT_FILE). Every request
                              body is read to the end (Content-Length or chunked)
                              and answered with "<bytes> <sha256> <x-amz-content-sha256>\n"
                              (the last is "-" when absent), so a client can check
                              that every byte it sent arrived and how it was signed.
    sink.py digest            Reads stdin to the end; prints "<bytes> <sha256>".

Only the standard library; it never stores a body, so its own memory stays flat.
"""

import hashlib
import http.server
import sys

CHUNK = 1 << 20


class Counter:
    """Running byte count and SHA-256 of a body."""

    def __init__(self):
        self.bytes = 0
        self.sha = hashlib.sha256()

    def feed(self, data):
        self.bytes += len(data)
        self.sha.update(data)

    def line(self):
        return "%d %s\n" % (self.bytes, self.sha.hexdigest())


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _read_exact(self, n, counter):
        while n > 0:
            data = self.rfile.read(min(n, CHUNK))
            if not data:
                raise ConnectionError("body ended %d bytes early" % n)
            counter.feed(data)
            n -= len(data)

    def _read_chunked(self, counter):
        while True:
            size_line = self.rfile.readline(1024)
            if not size_line:
                raise ConnectionError("chunked body ended early")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailer section, ended by an empty line.
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass
                return
            self._read_exact(size, counter)
            self.rfile.readline(8)  # CRLF after the chunk data

    def _consume(self):
        counter = Counter()
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._read_chunked(counter)
        else:
            self._read_exact(int(self.headers.get("Content-Length", "0")), counter)
        mode = self.headers.get("X-Amz-Content-Sha256", "-")
        body = ("%d %s %s\n" % (counter.bytes, counter.sha.hexdigest(), mode)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = _consume
    do_POST = _consume
    do_GET = _consume


def serve(port_file):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    with open(port_file, "w") as f:
        f.write("%d\n" % server.server_address[1])
    server.serve_forever()


def digest():
    counter = Counter()
    stdin = sys.stdin.buffer
    while True:
        data = stdin.read(CHUNK)
        if not data:
            break
        counter.feed(data)
    sys.stdout.write(counter.line())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "digest":
        digest()
    else:
        sys.exit("usage: sink.py serve PORT_FILE | sink.py digest")
