"""The read-ahead buffer under websocket-client: one socket read serves many frames, complete
data frames are taken straight from it, everything else is left to the library (which the
sidecar tests against the protocol servers exercise: pings, close frames, 50 MB frames)."""

from __future__ import annotations

from ingestion_pipelines.sidecar.connection import BufferedRecv


def frame(payload: bytes, opcode: int = 1, fin: bool = True, masked: bool = False) -> bytes:
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = bytes([first, n | (0x80 if masked else 0)])
    elif n < 65536:
        header = bytes([first, 126 | (0x80 if masked else 0)]) + n.to_bytes(2, "big")
    else:
        header = bytes([first, 127]) + n.to_bytes(8, "big")
    return header + (b"\0\0\0\0" if masked else b"") + payload


class Socket:
    def __init__(self, data: bytes, chunk: int):
        self.data, self.chunk, self.reads = data, chunk, 0

    def __call__(self, size: int) -> bytes:
        self.reads += 1
        out, self.data = self.data[: min(size, self.chunk)], self.data[min(size, self.chunk) :]
        return out


def test_many_frames_from_one_read():
    stream = b"".join(frame(b'{"t":%d}' % i) for i in range(100))
    sock = Socket(stream, chunk=1 << 20)
    reader = BufferedRecv(sock)
    assert reader.take_frame() is None  # empty: the library reads (here: a 2-byte header ask)
    assert reader(2) == stream[:2] and sock.reads == 1
    reader._pos = 0  # as if the library had not consumed it
    got = [reader.take_frame() for _ in range(100)]
    assert got == [(1, b'{"t":%d}' % i) for i in range(100)] and sock.reads == 1
    assert reader.take_frame() is None


def test_what_is_left_to_the_library():
    medium = b"m" * 300
    for data in (
        frame(b"ping", opcode=9),  # control frames: pings are answered by the library
        frame(b"\x03\xe8bye", opcode=8),
        frame(b"part", fin=False),  # fragments
        frame(b"masked", masked=True),
        frame(b"x" * 70_000, opcode=2),  # 8-byte length
        frame(medium)[:100],  # incomplete
    ):
        reader = BufferedRecv(Socket(data, chunk=1 << 20))
        reader(0)
        assert reader.take_frame() is None
        out = b""
        while len(out) < len(data):
            out += reader(len(data) - len(out))
        assert out == data  # the library still gets every byte, in order
    reader = BufferedRecv(Socket(frame(medium, opcode=2), chunk=1 << 20))
    reader(0)
    assert reader.take_frame() == (2, medium)  # 2-byte length, complete


def test_reads_never_return_more_than_asked():
    data = frame(b"a" * 200) + frame(b"b")
    reader = BufferedRecv(Socket(data, chunk=7))
    out = b""
    while len(out) < len(data):
        piece = reader(5)
        assert 0 < len(piece) <= 5
        out += piece
    assert out == data
