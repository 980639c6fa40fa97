#!/usr/bin/env python3
"""Write the seed sessions of fuzz/corpus/fuzz-nbd-server/: what a client
sends to the server (client flags, options, then requests), as raw bytes.
Usage (from the repository root):  python3 fuzz/mkseeds-nbd.py
Crash reproducers found by the fuzzer are added beside these by hand
(named crash-*), and are not touched by this script."""
import os
import struct

OUT = "fuzz/corpus/fuzz-nbd-server"
OPTS_MAGIC = 0x49484156454F5054
REQ_MAGIC = 0x25609513
EXPORT = b"fuzz"


def flags(f=3):
    return struct.pack(">I", f)


def opt(code, data=b""):
    return struct.pack(">QII", OPTS_MAGIC, code, len(data)) + data


def req(typ, off=0, length=0, fl=0, cookie=1, payload=b""):
    return struct.pack(">IHHQQI", REQ_MAGIC, fl, typ, cookie, off, length) + payload


def go(code=7, name=EXPORT, infos=(3,)):
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos))
    data += b"".join(struct.pack(">H", i) for i in infos)
    return opt(code, data)


def meta(code, names=(b"base:allocation",), name=EXPORT):
    data = struct.pack(">I", len(name)) + name + struct.pack(">I", len(names))
    data += b"".join(struct.pack(">I", len(n)) + n for n in names)
    return opt(code, data)


def io_session():
    s = req(0, 0, 4096, cookie=1)
    s += req(1, 4096, 512, cookie=2, payload=b"w" * 512)
    s += req(1, 100, 7, fl=1, cookie=3, payload=b"unalign")
    s += req(7, 0, 1 << 20, cookie=4)
    s += req(7, 0, 65536, fl=8, cookie=5)
    s += req(4, 65536, 65536, cookie=6)
    s += req(6, 131072, 4096, fl=16, cookie=7)
    s += req(6, 200000, 5000, fl=2, cookie=8)
    s += req(5, 0, 8192, cookie=9)
    s += req(3, cookie=10)
    s += req(0, 8000, 300, fl=4, cookie=11)
    s += req(2, cookie=12)
    return s


seeds = {
    "go-structured.bin": flags() + opt(8) + meta(10) + go() + io_session(),
    "go-simple.bin": flags() + go(infos=(0, 1, 2, 3)) + io_session(),
    "export-name.bin": flags(1) + opt(1, EXPORT) + io_session(),
    "options.bin": flags() + opt(3) + go(6, infos=()) + meta(9, ())
                   + meta(9) + opt(8) + meta(9, (b"base:",)) + opt(42, b"x")
                   + go(7, b"nosuch") + opt(2),
}
os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    print(name, len(data))
