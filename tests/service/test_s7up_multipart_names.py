"""Multipart bodies of the upload routes made parseable as they stream through (``service.body_limit``): a file
name too long for the parser's header line, a file sent without a name; read back by starlette's own parser."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service.body_limit import MAX_NAME_CHARS, PartHeaders, shortened_file_name

BOUNDARY = b"s7upBoundary"
Part = tuple[list[bytes], bytes]  # a part's header lines and its content


def body(*parts: Part, preamble: bytes = b"") -> bytes:
    """A multipart body of ``parts`` (header lines, content), as a client writes it."""
    out = preamble
    for headers, content in parts:
        out += b"--" + BOUNDARY + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + content + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\n"


def file_part(disposition: bytes, content: bytes = b"\xff\xd8 jpeg \r\n--s7up not a delimiter") -> Part:
    return ([b'Content-Disposition: form-data; name="images"' + disposition, b"Content-Type: image/jpeg"], content)


def streamed(data: bytes, size: int) -> bytes:
    """``data`` through :class:`PartHeaders` in chunks of ``size`` bytes, as a server receives it."""
    parts = PartHeaders(BOUNDARY)
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    return b"".join(parts.feed(chunk, more=n < len(chunks) - 1) for n, chunk in enumerate(chunks))


def parsed(data: bytes) -> list[tuple[str, str | None, bytes]]:
    """What starlette reads of ``data``: (field, file name or None for a plain field, content) of each part."""

    async def stream() -> AsyncGenerator[bytes, None]:
        yield data

    async def read() -> list[tuple[str, str | None, bytes]]:
        headers = Headers({"content-type": f"multipart/form-data; boundary={BOUNDARY.decode()}"})
        form = await MultiPartParser(headers, stream()).parse()
        out: list[tuple[str, str | None, bytes]] = []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                out.append((key, value.filename, await value.read()))
            else:
                out.append((key, None, value.encode()))
        await form.close()
        return out

    return asyncio.run(read())


def test_a_name_too_long_for_the_parser_is_shortened_and_the_other_parts_kept() -> None:
    """A 5,000-character name went over python-multipart's 4 KB header line: the whole body was refused ("Invalid
    multipart data.", a 400 for the flight's 50 images)."""
    long_name = "无人机" * 1700 + ".JPG"
    data = body(
        ([b'Content-Disposition: form-data; name="drone_id"'], b"m3t-01"),
        file_part(b'; filename="' + long_name.encode() + b'"'),
        file_part(b'; filename="DJI_0002.JPG"', b"second"),
    )
    with pytest.raises(MultiPartException, match="Invalid multipart data"):
        parsed(data)
    expected_name = long_name[: MAX_NAME_CHARS - 5] + "….JPG"
    for size in (1, 7, 64, 4096, len(data)):  # a delimiter or a header split anywhere between two chunks
        got = parsed(streamed(data, size))
        assert [(key, name) for key, name, _ in got] == [
            ("drone_id", None),
            ("images", expected_name),
            ("images", "DJI_0002.JPG"),
        ]
        assert got[1][2] == file_part(b"")[1]  # the content, a CRLF and a near-delimiter in it, unchanged
        assert got[2][2] == b"second"


def test_a_file_sent_without_a_name_is_read_as_a_file() -> None:
    """No ``filename`` (httpx, for one, leaves it out when the name is empty; ``filename*`` is not read, RFC 7578
    forbids it): the image was a form field, refused over 1 MB ("Part exceeded maximum size") or answered with a
    422 echoing its bytes. A plain field without a file type stays a field."""
    data = body(
        ([b'Content-Disposition: form-data; name="drone_id"', b"Content-Type: text/plain"], b"m3t-01"),
        file_part(b""),
        file_part(b"; filename*=UTF-8''%E7%8E%B0%E5%9C%BA.jpg"),
        ([b'Content-Disposition: form-data; name="images"', b"Content-Type: application/octet-stream"], b"raw"),
    )
    assert [name for _, name, _ in parsed(data)] == [None, None, None, None]
    for size in (1, 5, len(data)):
        assert [(key, name) for key, name, _ in parsed(streamed(data, size))] == [
            ("drone_id", None),
            ("images", ""),
            ("images", ""),
            ("images", ""),
        ]


def test_a_body_that_needs_nothing_passes_byte_for_byte() -> None:
    data = body(
        ([b'Content-Disposition: form-data; name="drone_id"'], b"m3t-01"),
        file_part(b'; filename="' + b"a" * MAX_NAME_CHARS + b'.jpg"'),  # 259 characters: over, shortened
        file_part(b'; filename="DJI_0001.JPG"'),
        preamble=b"a preamble a client may write\r\n",
    )
    plain = data.replace(b"a" * MAX_NAME_CHARS + b".jpg", b"short.jpg")
    for size in (1, 3, len(plain)):
        assert streamed(plain, size) == plain
    assert streamed(data, 11) != data


def test_a_quoted_name_with_quotes_and_backslashes_keeps_them() -> None:
    name = 'say "fire" \\ ' + "x" * 300 + ".jpg"
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    data = body(file_part(b'; filename="' + quoted.encode() + b'"'))
    [(_, got, _)] = parsed(streamed(data, 13))
    assert got == shortened_file_name(name)
    assert got is not None
    assert got.startswith('say "fire" \\ xxx')
    assert got.endswith("….jpg")


def test_shortened_names_keep_their_start_and_extension() -> None:
    assert shortened_file_name("DJI_0001.JPG") == "DJI_0001.JPG"
    assert len(shortened_file_name("a" * 5000 + ".heic")) == MAX_NAME_CHARS
    assert shortened_file_name("a" * 5000 + ".heic").endswith("….heic")
    assert shortened_file_name("a" * 300) == "a" * (MAX_NAME_CHARS - 1) + "…"  # no extension
    assert shortened_file_name("a." + "b" * 300).endswith("b…")  # not an extension: a name's tail
