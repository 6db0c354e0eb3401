"""A write-only MongoDB wire-protocol endpoint for `stockyard generate`.

It answers the handshake and the commands the generator sends (`hello`,
`delete`, `createIndexes`, `insert`, ...) and appends every inserted
document, byte for byte as the driver sent it, to `DIR/<collection>.bson`.
Nothing is parsed beyond the message framing and the command name, so it
takes the generator's documents as fast as the generator makes them: the
way to produce a large dataset without a MongoDB server in the loop.
`to_parquet.py` then reads those files with the spec's declared types.

It is not a database: no reads, no replacement by key (the generator's
`delete` of dimension rows is a no-op here, so point each run at an empty
directory), no indexes. Benchmark tooling only.

usage: bson_sink.py --port N --dir DIR
"""

import argparse
import os
import socket
import socketserver
import struct
import threading

import bson
from bson.int64 import Int64

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
HELLO = {
    "ismaster": True,
    "isWritablePrimary": True,
    "helloOk": True,
    "maxBsonObjectSize": 16 * 1024 * 1024,
    "maxMessageSizeBytes": 48_000_000,
    "maxWriteBatchSize": 100_000,
    "minWireVersion": 0,
    "maxWireVersion": 17,
    "readOnly": False,
    "ok": 1.0,
}


class Sink:
    def __init__(self, directory):
        self.dir = directory
        self.files = {}
        self.lock = threading.Lock()
        self.counts = {}

    def append(self, collection, docs, n):
        with self.lock:
            f = self.files.get(collection)
            if f is None:
                f = self.files[collection] = open(os.path.join(self.dir, collection + ".bson"), "ab")
            f.write(docs)
            f.flush()
            self.counts[collection] = self.counts.get(collection, 0) + n


def count_docs(buf):
    """Documents in a run of concatenated BSON documents."""
    n, i = 0, 0
    while i < len(buf):
        (size,) = struct.unpack_from("<i", buf, i)
        i += size
        n += 1
    return n


def read_exact(sock, n):
    chunks = []
    while n:
        c = sock.recv(min(n, 1 << 20))
        if not c:
            raise EOFError
        chunks.append(c)
        n -= len(c)
    return b"".join(chunks)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request_id = 1
        while True:
            try:
                header = read_exact(sock, 16)
            except (EOFError, ConnectionError):
                return
            length, req, _, op = struct.unpack("<iiii", header)
            body = read_exact(sock, length - 16)
            if op == OP_MSG:
                reply = self.op_msg(body)
                payload = struct.pack("<I", 0) + b"\x00" + bson.encode(reply)
                out_op = OP_MSG
            elif op == OP_QUERY:
                # Legacy handshake: flags, "db.$cmd\0", skip, return, query.
                end = body.index(b"\x00", 4)
                (size,) = struct.unpack_from("<i", body, end + 9)
                command = bson.decode(body[end + 9 : end + 9 + size])
                reply = self.command(command, None)
                doc = bson.encode(reply)
                payload = struct.pack("<iqii", 8, 0, 0, 1) + doc
                out_op = OP_REPLY
            else:
                return
            request_id += 1
            sock.sendall(struct.pack("<iiii", 16 + len(payload), request_id, req, out_op) + payload)

    def op_msg(self, body):
        (flags,) = struct.unpack_from("<I", body, 0)
        end = len(body) - (4 if flags & 1 else 0)
        i, command, sequences = 4, None, {}
        while i < end:
            kind = body[i]
            i += 1
            if kind == 0:
                (size,) = struct.unpack_from("<i", body, i)
                command = bson.decode(body[i : i + size])
                i += size
            else:
                (size,) = struct.unpack_from("<i", body, i)
                name_end = body.index(b"\x00", i + 4)
                name = body[i + 4 : name_end].decode()
                sequences[name] = body[name_end + 1 : i + size]
                i += size
        return self.command(command, sequences)

    def command(self, command, sequences):
        name = next(iter(command)).lower()
        if name in ("hello", "ismaster"):
            return HELLO
        if name == "insert":
            docs = (sequences or {}).get("documents")
            if docs is None:
                docs = b"".join(bson.encode(d) for d in command.get("documents", []))
            n = count_docs(docs)
            self.server.sink.append(command["insert"], docs, n)
            return {"n": n, "ok": 1.0}
        if name == "delete":
            return {"n": 0, "ok": 1.0}
        if name == "buildinfo":
            return {"version": "6.0.0", "versionArray": [6, 0, 0, 0], "ok": 1.0}
        if name == "listcollections":
            return {"cursor": {"id": Int64(0), "ns": "x.$cmd.listCollections", "firstBatch": []}, "ok": 1.0}
        # ping, createIndexes, endSessions, ...
        return {"ok": 1.0}


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    server = Server(("127.0.0.1", a.port), Handler)
    server.sink = Sink(a.dir)
    server.serve_forever()


if __name__ == "__main__":
    main()
