#!/usr/bin/env python3
"""A test fixture for one moto gap: moto answers GetBucketVersioning with the root element
GetBucketVersioningResponse, where S3 (and the Rust SDK, which checks the root) has
VersioningConfiguration. This loopback proxy forwards every request to moto unchanged and renames
that root in versioning answers only. Prints its address on the first line.

    python3 moto_s3_shim.py --upstream http://127.0.0.1:5055
"""
import argparse
import http.client
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = None


class Shim(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "transfer-encoding")}
        conn.request(self.command, self.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        query = urllib.parse.urlparse(self.path).query
        if self.command == "GET" and "versioning" in urllib.parse.parse_qs(query, keep_blank_values=True):
            data = data.replace(b"GetBucketVersioningResponse", b"VersioningConfiguration")
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


def main():
    global UPSTREAM
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    a = ap.parse_args()
    UPSTREAM = urllib.parse.urlparse(a.upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Shim)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
