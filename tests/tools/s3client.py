#!/usr/bin/env python3
"""A real S3 client (boto3) for the S3 tests and the demo; each command prints one JSON
object on stdout (errors: {"error": "..."} and exit status 1).

usage: s3client.py [--endpoint URL] [--addressing auto|path|virtual] [--deadline SECS] CMD ...
  mb BUCKET                             create a bucket (an existing one is fine)
  put FILE BUCKET KEY [--part-mib N]    upload with boto3's managed transfer (multipart
                                        above N MiB, default 64; parts of N MiB)
  put FILE BUCKET KEY --rate-mib R      one PutObject whose body is read at R MiB/s
  get BUCKET KEY [--range A-B] [--local FILE] [--rate-mib R] [--out FILE]
                                        download (streamed, hashed; --local: also the hash
                                        of the same bytes of FILE; --rate-mib: read slowly)
  ls BUCKET [--prefix P]                keys and sizes (every page)
  cp SRC_BUCKET SRC_KEY DST_BUCKET DST_KEY   server-side copy
  rm BUCKET KEY [KEY...]                delete
  rb BUCKET                             delete an (empty) bucket
  many-gets BUCKET KEY N [--threads T]  N GETs of a small object over T keep-alive clients
  sha256 FILE                           the file's SHA-256 (hex)

Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the CA: AWS_CA_BUNDLE. Every
request's headers are watched (under "wire"): `expect_100` counts requests sent with
`Expect: 100-continue`, `aws_chunked` those whose body was `aws-chunked`, `hosts` the
Host names addressed (virtual-hosted style: <bucket>.s3.rouge.test).
Every command is bounded by --deadline (default 300 s)."""
import argparse
import hashlib
import io
import json
import os
import signal
import sys
import threading
import time

import boto3
import botocore
from botocore.config import Config

CHUNK = 1 << 20


class Watch:
    """Counts what the client put on the wire (from botocore's before-send event)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.expect_100 = 0
        self.aws_chunked = 0
        self.requests = 0
        self.payload_modes = set()
        self.hosts = set()

    def before_send(self, request, **_):
        h = request.headers
        get = lambda k: (h.get(k) or b"") if isinstance(h.get(k), bytes) else (h.get(k) or "")
        text = lambda v: v.decode() if isinstance(v, bytes) else v
        with self.lock:
            self.requests += 1
            if text(get("Expect")).lower() == "100-continue":
                self.expect_100 += 1
            if "aws-chunked" in text(get("Content-Encoding")).lower():
                self.aws_chunked += 1
            host = text(get("Host"))
            if not host:
                from urllib.parse import urlsplit

                host = urlsplit(request.url).netloc
            self.hosts.add(host)
            mode = text(get("X-Amz-Content-SHA256"))
            if mode.startswith("STREAMING") or mode == "UNSIGNED-PAYLOAD":
                self.payload_modes.add(mode)

    def json(self):
        return {
            "requests": self.requests,
            "expect_100": self.expect_100,
            "aws_chunked": self.aws_chunked,
            "payload_modes": sorted(self.payload_modes),
            "hosts": sorted(self.hosts),
        }


def client(args, watch, pool=10):
    cfg = Config(
        s3={"addressing_style": args.addressing},
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=pool,
    )
    c = boto3.session.Session().client(
        "s3",
        endpoint_url=args.endpoint,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=cfg,
    )
    c.meta.events.register("before-send.s3.*", watch.before_send)
    return c


class PacedReader(io.RawIOBase):
    """A file read at `rate` bytes per second (seekable, so botocore can rewind it)."""

    def __init__(self, path, rate):
        self.f = open(path, "rb")
        self.rate = rate
        self.t0 = None
        self.done = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, off, whence=0):
        self.t0, self.done = None, 0
        return self.f.seek(off, whence)

    def tell(self):
        return self.f.tell()

    def read(self, n=-1):
        if self.t0 is None:
            self.t0 = time.monotonic()
        if n is None or n < 0 or n > 256 << 10:
            n = 256 << 10
        data = self.f.read(n)
        self.done += len(data)
        ahead = self.done / self.rate - (time.monotonic() - self.t0)
        if ahead > 0:
            time.sleep(ahead)
        return data

    def readinto(self, b):
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def file_sha256(path, start=0, end=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = None if end is None else end - start + 1
        while left is None or left > 0:
            d = f.read(CHUNK if left is None else min(CHUNK, left))
            if not d:
                break
            h.update(d)
            if left is not None:
                left -= len(d)
    return h.hexdigest()


def cmd_mb(args, c, _):
    try:
        c.create_bucket(Bucket=args.bucket)
        created = True
    except c.exceptions.BucketAlreadyOwnedByYou:
        created = False
    return {"bucket": args.bucket, "created": created}


def cmd_put(args, c, _):
    size = os.path.getsize(args.file)
    t0 = time.monotonic()
    if args.rate_mib:
        body = PacedReader(args.file, args.rate_mib * (1 << 20))
        r = c.put_object(Bucket=args.bucket, Key=args.key, Body=body, ContentLength=size)
        etag = r["ETag"]
    else:
        from boto3.s3.transfer import TransferConfig

        part = args.part_mib << 20
        tc = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=4)
        c.upload_file(args.file, args.bucket, args.key, Config=tc)
        etag = c.head_object(Bucket=args.bucket, Key=args.key)["ETag"]
    secs = time.monotonic() - t0
    return {
        "bytes": size,
        "etag": etag.strip('"'),
        "multipart": "-" in etag,
        "seconds": round(secs, 3),
        "mib_per_s": round(size / (1 << 20) / max(secs, 1e-6), 1),
    }


def cmd_get(args, c, _):
    kw = {"Bucket": args.bucket, "Key": args.key}
    if args.range:
        kw["Range"] = "bytes=" + args.range
    t0 = time.monotonic()
    r = c.get_object(**kw)
    meta = r["ResponseMetadata"]
    h = hashlib.sha256()
    n = 0
    rate = args.rate_mib * (1 << 20) if args.rate_mib else None
    out = open(args.out, "wb") if args.out else None
    body = r["Body"]
    while True:
        d = body.read(256 << 10)
        if not d:
            break
        h.update(d)
        n += len(d)
        if out:
            out.write(d)
        if rate:
            ahead = n / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    if out:
        out.close()
    secs = time.monotonic() - t0
    res = {
        "status": meta["HTTPStatusCode"],
        "bytes": n,
        "content_length": r.get("ContentLength"),
        "content_range": r.get("ContentRange"),
        "etag": r.get("ETag", "").strip('"'),
        "sha256": h.hexdigest(),
        "seconds": round(secs, 3),
        "mib_per_s": round(n / (1 << 20) / max(secs, 1e-6), 1),
    }
    if args.local:
        if args.range:
            a, b = args.range.split("-")
            res["local_sha256"] = file_sha256(args.local, int(a), int(b))
        else:
            res["local_sha256"] = file_sha256(args.local)
    return res


def cmd_ls(args, c, _):
    keys = {}
    pages = c.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix=args.prefix or "")
    for page in pages:
        for o in page.get("Contents", []):
            keys[o["Key"]] = o["Size"]
    return {"keys": keys}


def cmd_cp(args, c, _):
    r = c.copy_object(
        Bucket=args.dst_bucket,
        Key=args.dst_key,
        CopySource={"Bucket": args.src_bucket, "Key": args.src_key},
    )
    return {"etag": r.get("CopyObjectResult", {}).get("ETag", "").strip('"')}


def cmd_rm(args, c, _):
    for k in args.keys:
        c.delete_object(Bucket=args.bucket, Key=k)
    missing = []
    for k in args.keys:
        try:
            c.head_object(Bucket=args.bucket, Key=k)
        except botocore.exceptions.ClientError as e:
            if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                missing.append(k)
                continue
            raise
    return {"deleted": missing}


def cmd_rb(args, c, _):
    c.delete_bucket(Bucket=args.bucket)
    return {"bucket": args.bucket}


def cmd_many_gets(args, _c, watch):
    ok, failed, errors = [0], [0], []
    lock = threading.Lock()
    deadline = time.monotonic() + args.deadline - 5
    per = [args.n // args.threads + (1 if i < args.n % args.threads else 0) for i in range(args.threads)]

    def run(count):
        c = client(args, watch, pool=1)
        for _ in range(count):
            try:
                if time.monotonic() > deadline:
                    raise TimeoutError("deadline")
                c.get_object(Bucket=args.bucket, Key=args.key)["Body"].read()
                with lock:
                    ok[0] += 1
            except Exception as e:  # counted and reported, the loop goes on
                with lock:
                    failed[0] += 1
                    errors.append(str(e)[:200])

    threads = [threading.Thread(target=run, args=(k,)) for k in per]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"ok": ok[0], "failed": failed[0], "errors": errors[:5]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", default=os.environ.get("S3_ENDPOINT", "https://s3.rouge.test"))
    p.add_argument("--addressing", default="path", choices=["auto", "path", "virtual"])
    p.add_argument("--deadline", type=float, default=300)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("mb")
    s.add_argument("bucket")
    s = sub.add_parser("put")
    s.add_argument("file")
    s.add_argument("bucket")
    s.add_argument("key")
    s.add_argument("--part-mib", type=int, default=64)
    s.add_argument("--rate-mib", type=float)
    s = sub.add_parser("get")
    s.add_argument("bucket")
    s.add_argument("key")
    s.add_argument("--range")
    s.add_argument("--local")
    s.add_argument("--rate-mib", type=float)
    s.add_argument("--out")
    s = sub.add_parser("ls")
    s.add_argument("bucket")
    s.add_argument("--prefix")
    s = sub.add_parser("cp")
    for a in ("src_bucket", "src_key", "dst_bucket", "dst_key"):
        s.add_argument(a)
    s = sub.add_parser("rm")
    s.add_argument("bucket")
    s.add_argument("keys", nargs="+")
    s = sub.add_parser("rb")
    s.add_argument("bucket")
    s = sub.add_parser("many-gets")
    s.add_argument("bucket")
    s.add_argument("key")
    s.add_argument("n", type=int)
    s.add_argument("--threads", type=int, default=4)
    s = sub.add_parser("sha256")
    s.add_argument("file")
    args = p.parse_args()

    # Bounded: the whole command ends by the deadline, whatever the network does.
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("deadline")))
    signal.alarm(int(args.deadline))
    if args.cmd == "sha256":
        print(json.dumps({"sha256": file_sha256(args.file)}))
        return 0
    watch = Watch()
    try:
        c = client(args, watch)
        res = globals()["cmd_" + args.cmd.replace("-", "_")](args, c, watch)
        res["wire"] = watch.json()
        res["boto3"] = boto3.__version__
        print(json.dumps(res))
        return 0
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}", "wire": watch.json()}))
        return 1


if __name__ == "__main__":
    sys.exit(main())
