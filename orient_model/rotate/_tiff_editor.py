"""A minimal in-place editor of a TIFF structure's first IFD (TIFF files and EXIF blobs alike).

Private to :mod:`orient_model.rotate`: it changes the Orientation tag where it lies, so no other
byte of the file moves.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from orient_model.rotate.common import ORIENTATION_TAG, XMP_TAG, RotateError, patch_xmp_orientation

_TYPE_SIZES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
    16: 8,
    17: 8,
    18: 8,
}


@dataclass
class _IfdEntry:
    tag: int
    type: int
    count: int
    pos: int  # position of the entry in the buffer
    value_pos: int  # where its value bytes are (inline or at the offset)


class TiffEditor:
    """Minimal in-place editor of IFD0 in a TIFF structure (a TIFF file or an EXIF blob).

    We never restructure the file: a tag is changed where it lies, and a missing tag is added
    by appending a copy of IFD0 with one more entry, so pixel data never moves.
    """

    def __init__(self, buf: bytearray, base: int = 0) -> None:
        self.buf, self.base = buf, base
        order = bytes(buf[base : base + 2])
        if order not in (b"II", b"MM"):
            raise RotateError("EXIF/TIFF structure has no valid byte-order header")
        self.bo = "<" if order == b"II" else ">"
        self.big = self._u("H", base + 2) == 43
        self.ptr_pos = base + (8 if self.big else 4)

    def _u(self, fmt: str, pos: int) -> int:
        return struct.unpack_from(self.bo + fmt, self.buf, pos)[0]

    @property
    def _off(self) -> str:
        return "Q" if self.big else "I"

    def entries(self) -> tuple[list[_IfdEntry], int]:
        """IFD0 entries and the offset (relative to base) of IFD0."""
        ifd = self._u(self._off, self.ptr_pos)
        pos = self.base + ifd
        count = self._u("Q" if self.big else "H", pos)
        size, head = (20, 8) if self.big else (12, 2)
        out = []
        for i in range(count):
            epos = pos + head + i * size
            tag, typ = self._u("H", epos), self._u("H", epos + 2)
            cnt = self._u(self._off, epos + 4)
            field = epos + (12 if self.big else 8)
            inline = _TYPE_SIZES.get(typ, 1) * cnt <= (8 if self.big else 4)
            value_pos = field if inline else self.base + self._u(self._off, field)
            out.append(_IfdEntry(tag, typ, cnt, epos, value_pos))
        return out, ifd

    def set_orientation(self, value: int) -> None:
        entries, ifd = self.entries()
        for entry in entries:
            if entry.tag == ORIENTATION_TAG:
                fmt = {3: "H", 4: "I"}.get(entry.type)
                if fmt is None:
                    raise RotateError("the Orientation tag has an unexpected type; fix it with exiftool")
                struct.pack_into(self.bo + fmt, self.buf, entry.value_pos, value)
                return
        self._append_ifd0_with_orientation(entries, ifd, value)

    def _append_ifd0_with_orientation(self, entries: list[_IfdEntry], ifd: int, value: int) -> None:
        size = 20 if self.big else 12
        raw = [bytes(self.buf[e.pos : e.pos + size]) for e in entries]
        new_entry = struct.pack(self.bo + "HH" + self._off, ORIENTATION_TAG, 3, 1)
        new_entry += struct.pack(self.bo + "H", value).ljust(size - len(new_entry), b"\0")
        tags = [e.tag for e in entries] + [ORIENTATION_TAG]
        pairs = sorted(zip(tags, raw + [new_entry], strict=True), key=lambda t: t[0])
        ordered = [r for _, r in pairs]
        head = self.base + ifd + (8 if self.big else 2)
        next_ptr = bytes(
            self.buf[head + len(entries) * size : head + len(entries) * size + (8 if self.big else 4)]
        )
        while (len(self.buf) - self.base) % 2:
            self.buf.append(0)
        new_ifd = len(self.buf) - self.base
        self.buf += struct.pack(self.bo + ("Q" if self.big else "H"), len(ordered))
        self.buf += b"".join(ordered) + next_ptr
        struct.pack_into(self.bo + self._off, self.buf, self.ptr_pos, new_ifd)

    def patch_xmp_orientation(self, value: int) -> None:
        for entry in self.entries()[0]:
            if entry.tag == XMP_TAG:
                end = entry.value_pos + entry.count
                self.buf[entry.value_pos : end] = patch_xmp_orientation(
                    bytes(self.buf[entry.value_pos : end]), value
                )


def exif_blob_upright(exif: bytes) -> bytes:
    """An EXIF blob (optionally ``Exif\\0\\0``-prefixed) with its Orientation reset to 1."""
    buf = bytearray(exif)
    base = 6 if buf.startswith(b"Exif\0\0") else 0
    editor = TiffEditor(buf, base)
    if any(e.tag == ORIENTATION_TAG for e in editor.entries()[0]):
        editor.set_orientation(1)
    return bytes(buf)
