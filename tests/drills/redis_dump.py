"""Every value stored in a Redis, decoded every way RQ stores things (zlib, base64), for scans."""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterator

import redis as redis_lib


def raw_values(client: redis_lib.Redis) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) for every key, field, member and stream entry."""
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        yield key, key
        if kind == b"string":
            yield key, client.get(key) or b""
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                yield key, field
                yield key, value
        elif kind == b"list":
            yield from ((key, v) for v in client.lrange(key, 0, -1))
        elif kind == b"set":
            yield from ((key, v) for v in client.smembers(key))
        elif kind == b"zset":
            yield from ((key, v) for v, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == b"stream":
            for _, fields in client.xrange(key):
                for field, value in fields.items():
                    yield key, field
                    yield key, value


def decodings(value: bytes) -> list[bytes]:
    """The value and what it becomes when unpacked as RQ packs things (zlib, base64, both)."""
    found = [value]
    for candidate in (value, _b64(value)):
        if candidate is None:
            continue
        if candidate is not value:
            found.append(candidate)
        try:
            found.append(zlib.decompress(candidate))
        except zlib.error:
            pass
    return found


def _b64(value: bytes) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def is_pickle(data: bytes) -> bool:
    """Pickle protocol 2 and later start with the PROTO opcode and the protocol number."""
    return len(data) > 2 and data[0] == 0x80 and 2 <= data[1] <= 5
