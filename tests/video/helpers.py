"""Build DJI JPEG variants for tests: replace or add the XMP packet of a real frame (written to tmp_path only)."""

from __future__ import annotations

import struct
from pathlib import Path

from video.drone import XMP_APP1_HEADER


def xmp_segment(packet: bytes) -> bytes:
    payload = XMP_APP1_HEADER + packet
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def with_xmp(jpeg: bytes, packet: bytes) -> bytes:
    """The JPEG with its XMP APP1 segment replaced by ``packet`` (or a new one inserted after SOI)."""
    assert jpeg[:2] == b"\xff\xd8"
    pos = 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and jpeg[pos + 1] not in (0xDA, 0xD9):
        (length,) = struct.unpack(">H", jpeg[pos + 2 : pos + 4])
        end = pos + 2 + length
        if jpeg[pos + 1] == 0xE1 and jpeg[pos + 4 : end].startswith(XMP_APP1_HEADER):
            return jpeg[:pos] + xmp_segment(packet) + jpeg[end:]
        pos = end
    return jpeg[:2] + xmp_segment(packet) + jpeg[2:]


def dji_packet(attributes: dict[str, str], namespace: str = "http://www.dji.com/drone-dji/1.0/") -> bytes:
    attrs = "\n".join(f'   drone-dji:{name}="{value}"' for name, value in attributes.items())
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="DJI Meta Data" xmlns:drone-dji="{namespace}"\n{attrs}>\n'
        "  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>"
    ).encode()


def write_variant(source: Path, target: Path, packet: bytes) -> Path:
    target.write_bytes(with_xmp(source.read_bytes(), packet))
    return target
