"""TensorBoard event files, read without TensorFlow: TFRecord framing with
CRC-32C checks, and just enough protobuf decoding to find scalar summaries
(`simple_value` and tensor-encoded float, double, half and bfloat16).

Raises `TFRecordError` on framing, checksum or protobuf damage; the caller
(measure/sources.py) turns that into a `corrupt` reading."""

from __future__ import annotations

import struct


class TFRecordError(Exception):
    """An event file whose framing, checksums or protobuf do not hold."""


_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)
del _n, _c


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord framing uses."""
    crc, table = 0xFFFFFFFF, _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 and add a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfevents_scalars(path: str, tag: str):
    """([(wall_time, step, value)], note) for every scalar `tag` in one event file.

    Every record's length checksum is verified (a bad one would desynchronise
    the framing). The data checksum is verified for every record whose bytes
    contain the tag, i.e. every record a value can come from; records about
    other tags (images, histograms, graphs) are skipped unverified so a large
    event file stays fast to read with a pure-Python CRC. A truncated last
    record (the writer was killed mid-write) is ignored and noted; any other
    damage raises TFRecordError. Values are returned as found, nan included.
    """
    needle = tag.encode("utf-8")
    out, note, offset = [], "", 0
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if not header:
                break
            if len(header) < 12:
                note = "ignored a truncated last record"
                break
            length_bytes, length_crc = header[:8], struct.unpack("<I", header[8:])[0]
            if masked_crc32c(length_bytes) != length_crc:
                raise TFRecordError(f"bad length checksum in the record at byte {offset}")
            length = struct.unpack("<Q", length_bytes)[0]
            data = f.read(length)
            footer = f.read(4) if len(data) == length else b""
            if len(footer) < 4:
                note = "ignored a truncated last record"
                break
            if needle in data:
                if masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                    raise TFRecordError(f"bad data checksum in the record at byte {offset}")
                out.extend(_event_scalars(data, needle, offset))
            offset += 16 + length
    return out, note


def scalar_tags(path: str, max_records: int = 2000) -> list:
    """Sorted tags of the scalars in the first `max_records` records of an event file.

    For `ratchet.py detect`: best effort, so checksums are not verified and
    damage simply ends the scan.
    """
    tags = set()
    try:
        with open(path, "rb") as f:
            for _ in range(max_records):
                header = f.read(12)
                if len(header) < 12:
                    break
                length = struct.unpack("<Q", header[:8])[0]
                if length > 64 << 20:
                    break
                data = f.read(length)
                if len(f.read(4)) < 4:
                    break
                for number, wire, value in _fields(data):
                    if number == 5 and wire == 2:
                        for n, w, v in _fields(value):
                            if n == 1 and w == 2:
                                tag = [bytes(x) for k, kw, x in _fields(v) if k == 1 and kw == 2]
                                kinds = {k for k, kw, x in _fields(v)}
                                if tag and kinds & {2, 8}:
                                    tags.add(tag[0].decode("utf-8", "replace"))
    except (OSError, TFRecordError, struct.error, MemoryError, OverflowError):
        pass
    return sorted(tags)


def _varint(buf, pos: int):
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise TFRecordError("malformed varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf):
    """Yield (field number, wire type, value) of one protobuf message.

    The value is an int for varints, bytes for length-delimited fields and
    the raw little-endian bytes for 64- and 32-bit fields.
    """
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise TFRecordError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise TFRecordError("protobuf field runs past the end of its message")
        yield number, wire, value


def _event_scalars(data: bytes, needle: bytes, offset: int) -> list:
    """[(wall_time, step, value)] for the tag `needle` in one Event message."""
    wall_time, step, summaries = 0.0, 0, []
    try:
        for number, wire, value in _fields(data):
            if number == 1 and wire == 1:
                wall_time = struct.unpack("<d", value)[0]
            elif number == 2 and wire == 0:
                step = value - (1 << 64) if value >= 1 << 63 else value
            elif number == 5 and wire == 2:
                summaries.append(value)
        found = []
        for summary in summaries:
            for number, wire, value in _fields(summary):
                if number == 1 and wire == 2:
                    scalar = _value_scalar(value, needle)
                    if scalar is not None:
                        found.append((wall_time, step, scalar))
        return found
    except (struct.error, TFRecordError) as e:
        raise TFRecordError(f"undecodable event in the record at byte {offset}: {e}")


def _value_scalar(value_msg: bytes, needle: bytes) -> float | None:
    """The scalar of a Summary.Value whose tag is `needle`, else None."""
    tag, scalar = None, None
    for number, wire, value in _fields(value_msg):
        if number == 1 and wire == 2:
            tag = bytes(value)
        elif number == 2 and wire == 5:
            scalar = struct.unpack("<f", value)[0]
        elif number == 8 and wire == 2:
            scalar = _tensor_scalar(value)
    return scalar if tag == needle else None


_DT_FLOAT, _DT_DOUBLE, _DT_BFLOAT16, _DT_HALF = 1, 2, 14, 19
_CONTENT_FORMATS = {_DT_FLOAT: "<f", _DT_DOUBLE: "<d", _DT_HALF: "<e"}


def _tensor_scalar(msg: bytes) -> float | None:
    """The single float of a TensorProto, or None when it is not a float scalar."""
    dtype, content, values = 0, None, []
    for number, wire, value in _fields(msg):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 2 and wire == 2 and _shape_size(value) != 1:
            return None
        elif number == 4 and wire == 2:
            content = bytes(value)
        elif number == 5:
            values += _floats(value, wire, "<f")
        elif number == 6:
            values += _floats(value, wire, "<d")
        elif number == 13:
            values += [_half_bits(bits, dtype) for bits in _varints(value, wire)]
    if dtype == _DT_BFLOAT16 and content is not None and len(content) == 2:
        return struct.unpack("<f", b"\0\0" + content)[0]
    if content is not None and dtype in _CONTENT_FORMATS:
        fmt = _CONTENT_FORMATS[dtype]
        return struct.unpack(fmt, content)[0] if len(content) == struct.calcsize(fmt) else None
    if dtype in (_DT_FLOAT, _DT_DOUBLE, _DT_HALF, _DT_BFLOAT16) and len(values) == 1:
        return values[0]
    return None


def _shape_size(msg: bytes) -> int:
    size = 1
    for number, wire, value in _fields(msg):
        if number == 2 and wire == 2:
            for n, w, v in _fields(value):
                if n == 1 and w == 0:
                    size *= v
        elif number == 3 and wire == 0 and value:
            return -1
    return size


def _floats(value: bytes, wire: int, fmt: str) -> list:
    width = struct.calcsize(fmt)
    if wire == 2:
        if len(value) % width:
            raise TFRecordError("packed float field of odd length")
        return [x for (x,) in struct.iter_unpack(fmt, value)]
    if (wire, width) in ((5, 4), (1, 8)):
        return [struct.unpack(fmt, value)[0]]
    raise TFRecordError(f"float field with wire type {wire}")


def _varints(value, wire: int) -> list:
    if wire == 0:
        return [value]
    if wire == 2:
        out, pos = [], 0
        while pos < len(value):
            v, pos = _varint(value, pos)
            out.append(v)
        return out
    raise TFRecordError(f"half_val field with wire type {wire}")


def _half_bits(bits: int, dtype: int) -> float:
    """half_val holds fp16 (DT_HALF) or bfloat16 bits in the low 16 bits."""
    bits &= 0xFFFF
    if dtype == _DT_BFLOAT16:
        return struct.unpack("<f", struct.pack("<I", bits << 16))[0]
    return struct.unpack("<e", struct.pack("<H", bits))[0]
