"""CBOR (RFC 8949), the subset AWS's Smithy RPC v2 CBOR protocol puts on the wire.

Standard library only, so that `bench/standin.py` can use it under the system python3.

    dumps(obj) -> bytes
    loads(data) -> obj

Decoding accepts every well-formed item the protocol can carry: unsigned and negative
integers, byte and text strings (definite and indefinite length), arrays and maps (definite
and indefinite), tags, half/single/double floats and the simple values false, true, null
and undefined (read as None, as the protocol requires). Tag 1 (epoch-based date/time) is
read as a timezone-aware UTC `datetime`; any other tag yields its content unchanged.
Anything malformed (truncated, trailing bytes, reserved additional information, a stray
break, an indefinite string with a chunk of another type, invalid UTF-8, an unhashable map
key) raises ValueError.

Encoding writes the smallest head for every length and integer, floats always as float64
(the Rust SDK reads a `double` member only from a CBOR float), and `datetime` as tag 1
followed by float64 epoch seconds, which is how the Rust SDK writes timestamps
(`aws-smithy-cbor`'s `Encoder::timestamp`). A naive `datetime` is taken to be UTC.
"""

from __future__ import annotations

import struct
from datetime import datetime, timezone

__all__ = ["dumps", "loads"]

# Deep enough for any AWS shape; bounds recursion on hostile input.
MAX_DEPTH = 200

_BREAK = object()


# ---- encoding ------------------------------------------------------------------------------


def _head(major: int, n: int) -> bytes:
    """The initial byte and argument of an item of major type `major` with argument `n`."""
    m = major << 5
    if n < 24:
        return bytes((m | n,))
    if n < 0x100:
        return bytes((m | 24, n))
    if n < 0x10000:
        return bytes((m | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((m | 26,)) + n.to_bytes(4, "big")
    if n < 0x10000000000000000:
        return bytes((m | 27,)) + n.to_bytes(8, "big")
    raise ValueError(f"integer out of CBOR range: {n}")


def _encode(obj, out: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("structure nested too deeply to encode")
    if obj is None:
        out.append(b"\xf6")
    elif obj is True:
        out.append(b"\xf5")
    elif obj is False:
        out.append(b"\xf4")
    elif isinstance(obj, int):
        if obj >= 0:
            out.append(_head(0, obj))
        else:
            out.append(_head(1, -1 - obj))
    elif isinstance(obj, float):
        out.append(b"\xfb" + struct.pack(">d", obj))
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        out.append(_head(3, len(data)))
        out.append(data)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        out.append(_head(2, len(data)))
        out.append(data)
    elif isinstance(obj, datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=timezone.utc)
        out.append(b"\xc1\xfb" + struct.pack(">d", obj.timestamp()))
    elif isinstance(obj, (list, tuple)):
        out.append(_head(4, len(obj)))
        for item in obj:
            _encode(item, out, depth + 1)
    elif isinstance(obj, dict):
        out.append(_head(5, len(obj)))
        for key, value in obj.items():
            _encode(key, out, depth + 1)
            _encode(value, out, depth + 1)
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as CBOR")


def dumps(obj) -> bytes:
    out: list[bytes] = []
    _encode(obj, out, 0)
    return b"".join(out)


# ---- decoding ------------------------------------------------------------------------------


class _Decoder:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ValueError(f"truncated CBOR: {n} byte(s) needed at offset {self.pos}, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def argument(self, info: int, at: int) -> int | None:
        """The argument of a head with additional information `info`; None for indefinite."""
        if info < 24:
            return info
        if info == 24:
            return self.take(1)[0]
        if info == 25:
            return int.from_bytes(self.take(2), "big")
        if info == 26:
            return int.from_bytes(self.take(4), "big")
        if info == 27:
            return int.from_bytes(self.take(8), "big")
        if info == 31:
            return None
        raise ValueError(f"reserved additional information {info} at offset {at}")

    def item(self, depth: int, allow_break: bool = False):
        if depth > MAX_DEPTH:
            raise ValueError("CBOR nested too deeply")
        at = self.pos
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F

        if major == 7:
            return self.simple(info, at, allow_break)

        n = self.argument(info, at)
        if major == 0:
            if n is None:
                raise ValueError(f"indefinite length on an integer at offset {at}")
            return n
        if major == 1:
            if n is None:
                raise ValueError(f"indefinite length on an integer at offset {at}")
            return -1 - n
        if major in (2, 3):
            if n is None:
                raw = self.chunks(major, at, depth)
            else:
                raw = self.take(n)
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"invalid UTF-8 in text string at offset {at}: {e}") from None
        if major == 4:
            out = []
            if n is None:
                while True:
                    value = self.item(depth + 1, allow_break=True)
                    if value is _BREAK:
                        return out
                    out.append(value)
            for _ in range(n):
                out.append(self.item(depth + 1))
            return out
        if major == 5:
            result = {}
            count = 0
            while n is None or count < n:
                key = self.item(depth + 1, allow_break=n is None)
                if key is _BREAK:
                    break
                value = self.item(depth + 1)
                try:
                    result[key] = value
                except TypeError:
                    raise ValueError(f"unhashable map key ({type(key).__name__}) in map at offset {at}") from None
                count += 1
            return result
        # major == 6: a tag
        if n is None:
            raise ValueError(f"indefinite length on a tag at offset {at}")
        content = self.item(depth + 1)
        if n == 1:
            return self.epoch(content, at)
        return content

    def chunks(self, major: int, at: int, depth: int) -> bytes:
        """The concatenated definite-length chunks of an indefinite byte or text string."""
        parts = []
        while True:
            chunk_at = self.pos
            initial = self.take(1)[0]
            if initial == 0xFF:
                return b"".join(parts)
            if initial >> 5 != major or initial & 0x1F == 31:
                raise ValueError(f"indefinite string at offset {at} has a chunk of another kind at offset {chunk_at}")
            parts.append(self.take(self.argument(initial & 0x1F, chunk_at)))

    def simple(self, info: int, at: int, allow_break: bool):
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):  # null, undefined
            return None
        if info == 25:
            return struct.unpack(">e", self.take(2))[0]
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31:
            if allow_break:
                return _BREAK
            raise ValueError(f"unexpected break at offset {at}")
        if info in (28, 29, 30):
            raise ValueError(f"reserved additional information {info} at offset {at}")
        if info == 24:
            value = self.take(1)[0]
            if value < 32:
                raise ValueError(f"badly encoded simple value {value} at offset {at}")
            raise ValueError(f"unsupported simple value {value} at offset {at}")
        raise ValueError(f"unsupported simple value {info} at offset {at}")

    @staticmethod
    def epoch(content, at: int) -> datetime:
        if isinstance(content, bool) or not isinstance(content, (int, float)):
            raise ValueError(f"tag 1 at offset {at} must enclose a number, not {type(content).__name__}")
        try:
            return datetime.fromtimestamp(content, timezone.utc)
        except (OverflowError, OSError, ValueError) as e:
            raise ValueError(f"tag 1 at offset {at} is out of range: {e}") from None


def loads(data) -> object:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"CBOR input must be bytes, not {type(data).__name__}")
    decoder = _Decoder(bytes(data))
    if not decoder.data:
        raise ValueError("empty CBOR input")
    value = decoder.item(0)
    if decoder.pos != len(decoder.data):
        raise ValueError(f"{len(decoder.data) - decoder.pos} trailing byte(s) after the CBOR item at offset {decoder.pos}")
    return value
