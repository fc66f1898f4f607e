#!/usr/bin/env python3
"""A small stand-in for the Hugging Face Hub HTTP API, for hub download tests.

Serves every directory ROOT/OWNER/NAME as the model repository OWNER/NAME:

  GET /api/models/OWNER/NAME/revision/REV[?blobs=true]
      -> {"id", "sha", "siblings": [{"rfilename", "size", "blobId", "lfs"?}]}
  GET /OWNER/NAME/resolve/REV/PATH
      -> LFS files (*.safetensors, *.gguf, *.bin): 302 to /_blobs/OWNER/NAME/PATH,
         like the hub's CDN redirect; other files are answered directly.
  GET /_blobs/OWNER/NAME/PATH   file bytes, honouring "Range: bytes=A-[B]".
  GET /_log                     JSON list of the requests seen so far
                                (also appended to --log-file as JSON lines).

REV is "main" or the repository's commit id (sha1 of the repo id). Unknown
repositories, revisions and files get 404 with an X-Error-Code header
(RepoNotFound, RevisionNotFound, EntryNotFound), as the hub sends.

Options: --token T requires "Authorization: Bearer T" on /api and /resolve
(401 otherwise); --cut PATH:K makes the first body of PATH stop after K bytes
and drop the connection; --bad-sha PATH lists a wrong sha256 for PATH;
--ignore-range answers every Range request with the whole file (200).

Binds 127.0.0.1 on an ephemeral port and prints "PORT <n>" on stdout. Exits
when its parent process goes away. Python standard library only.
"""

import argparse
import hashlib
import http.server
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin")


class Hub:
    def __init__(self, args):
        self.root = os.path.abspath(args.root)
        self.token = args.token
        self.cuts = {}
        for spec in args.cut:
            path, _, count = spec.rpartition(":")
            self.cuts[path] = int(count)
        self.bad_sha = set(args.bad_sha)
        self.ignore_range = args.ignore_range
        self.log_file = args.log_file
        self.log = []
        self.lock = threading.Lock()

    def repo_dir(self, repo):
        path = os.path.join(self.root, repo)
        return path if os.path.isdir(path) else None

    @staticmethod
    def commit(repo):
        return hashlib.sha1(repo.encode()).hexdigest()

    def files(self, repo_dir):
        out = []
        for base, dirs, names in os.walk(repo_dir):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(base, name)
                out.append(os.path.relpath(full, repo_dir).replace(os.sep, "/"))
        return out

    def take_cut(self, path):
        with self.lock:
            return self.cuts.pop(path, None)


class Handler(http.server.BaseHTTPRequestHandler):
    hub = None  # Set before serving.

    def log_message(self, fmt, *args):
        pass

    def send_json(self, code, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def not_found(self, code, message):
        self.send_json(404, {"error": message}, {"X-Error-Code": code})

    def authorized(self):
        if self.hub.token is None:
            return True
        if self.headers.get("Authorization") == "Bearer " + self.hub.token:
            return True
        self.send_json(401, {"error": "Invalid credentials in Authorization header"})
        return False

    def do_GET(self):
        hub = self.hub
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        record = {
            "path": path,
            "range": self.headers.get("Range"),
            "auth": self.headers.get("Authorization") is not None,
        }
        with hub.lock:
            hub.log.append(record)
            if hub.log_file:
                with open(hub.log_file, "a") as f:
                    f.write(json.dumps(record) + "\n")
        if path == "/_log":
            with hub.lock:
                self.send_json(200, list(hub.log))
            return
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/(.+)", path)
        if m:
            if self.authorized():
                self.listing(m.group(1), m.group(2))
            return
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            if self.authorized():
                self.resolve(m.group(1), m.group(2), m.group(3))
            return
        m = re.fullmatch(r"/_blobs/([^/]+/[^/]+)/(.+)", path)
        if m:
            repo_dir = hub.repo_dir(m.group(1))
            full = os.path.join(repo_dir, m.group(2)) if repo_dir else None
            if full is None or not os.path.isfile(full):
                self.not_found("EntryNotFound", "Entry not found")
                return
            self.serve_file(m.group(2), full)
            return
        self.not_found("RepoNotFound", "Repository not found")

    def check_repo(self, repo, rev):
        repo_dir = self.hub.repo_dir(repo)
        if repo_dir is None:
            self.not_found("RepoNotFound", "Repository not found")
            return None
        if rev not in ("main", Hub.commit(repo)):
            self.not_found("RevisionNotFound", "Invalid rev id: " + rev)
            return None
        return repo_dir

    def listing(self, repo, rev):
        repo_dir = self.check_repo(repo, rev)
        if repo_dir is None:
            return
        siblings = []
        for rel in self.hub.files(repo_dir):
            with open(os.path.join(repo_dir, rel), "rb") as f:
                data = f.read()
            entry = {
                "rfilename": rel,
                "size": len(data),
                "blobId": hashlib.sha1(data).hexdigest(),
            }
            if rel.endswith(LFS_SUFFIXES):
                sha = hashlib.sha256(data).hexdigest()
                if rel in self.hub.bad_sha:
                    sha = hashlib.sha256(data + b"x").hexdigest()
                entry["lfs"] = {"sha256": sha, "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        self.send_json(200, {
            "id": repo,
            "modelId": repo,
            "sha": Hub.commit(repo),
            "siblings": siblings,
        })

    def resolve(self, repo, rev, rel):
        repo_dir = self.check_repo(repo, rev)
        if repo_dir is None:
            return
        full = os.path.join(repo_dir, rel)
        if ".." in rel.split("/") or not os.path.isfile(full):
            self.not_found("EntryNotFound", "Entry not found")
            return
        if rel.endswith(LFS_SUFFIXES):
            host, port = self.server.server_address[:2]
            location = "http://%s:%d/_blobs/%s/%s" % (
                host, port, repo, urllib.parse.quote(rel))
            body = b"Found. Redirecting to " + location.encode()
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.serve_file(rel, full)

    def serve_file(self, rel, full):
        with open(full, "rb") as f:
            data = f.read()
        size = len(data)
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and not self.hub.ignore_range:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if m:
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), size - 1)
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", "bytes */%d" % size)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
        body = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        cut = self.hub.take_cut(rel)
        if cut is not None and cut < len(body):
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


def watch_parent(parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--token")
    parser.add_argument("--cut", action="append", default=[], metavar="PATH:K")
    parser.add_argument("--bad-sha", action="append", default=[], metavar="PATH")
    parser.add_argument("--ignore-range", action="store_true")
    parser.add_argument("--log-file")
    args = parser.parse_args()

    Handler.hub = Hub(args)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
