"""Request bodies are bounded while they stream in, for anyone (config/http_limits.py), on a real daphne process.

Memory is read from the server's /proc/<pid>/status: VmHWM is the peak resident set, so a spike that was freed
again still counts.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MIB = 1024 * 1024
BUDGET = 64 * MIB  # the bound on what one hostile request may add to the server's memory


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def _send(base_url: str, head: bytes, body_chunks: int, chunk: bytes, *, chunked: bool = False) -> tuple[bytes, int]:
    """Send the head, then up to `body_chunks` chunks, until the server answers or closes; return what it answered
    and how many body bytes went out."""
    host, port = base_url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        sock.settimeout(0.0)
        answer = b""
        for _ in range(body_chunks):
            try:
                part = sock.recv(65536)
                if part:
                    answer += part
                    break
            except BlockingIOError:
                pass
            try:
                sock.settimeout(5)
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
                sock.settimeout(0.0)
            except OSError:  # the server closed the connection: it stopped reading
                break
            sent += len(chunk)
        sock.settimeout(10)
        try:
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
        except OSError:
            pass
    return answer, sent


def _json_body(answer: bytes) -> dict[str, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    parsed: dict[str, str] = json.loads(body)
    return parsed


def test_an_anonymous_300_mib_multipart_post_is_refused_before_it_is_read(live_daphne_process, settings):
    base_url, process = live_daphne_process
    declared = 300 * MIB
    head = (
        "POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    before = _peak_rss(process.pid)
    chunk = b"--xyz\r\nContent-Disposition: form-data; name=f\r\n\r\n" + b"a" * MIB
    answer, sent = _send(base_url, head, 300, chunk)
    time.sleep(0.5)
    grown = _peak_rss(process.pid) - before
    refusal = _json_body(answer)
    assert refusal["error"] == "too_large" and "MiB" in refusal["detail"]
    assert sent < 64 * MIB, f"the server kept reading: {sent / MIB:.0f} MiB went out"
    assert grown < BUDGET, f"the server grew by {grown / MIB:.0f} MiB"


def test_a_chunked_body_is_cut_off_at_the_limit_and_memory_stays_flat(live_daphne_process, settings):
    base_url, process = live_daphne_process
    head = (
        b"POST /api/v1/items/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=xyz\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    before = _peak_rss(process.pid)
    answer, sent = _send(base_url, head, 300, b"b" * MIB, chunked=True)
    time.sleep(0.5)
    grown = _peak_rss(process.pid) - before
    assert _json_body(answer)["error"] == "too_large"
    assert sent < settings.VEIL_MAX_REQUEST_BYTES + 64 * MIB
    assert grown < BUDGET, f"the server grew by {grown / MIB:.0f} MiB"


def test_a_legal_multipart_body_is_no_longer_parsed_into_memory_by_the_server(live_daphne_process, settings):
    """Twisted used to parse every multipart body into memory at 12-15x its size before Django saw it."""
    base_url, process = live_daphne_process
    size = 20 * MIB
    assert size < settings.VEIL_MAX_REQUEST_BYTES
    part_head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    tail = b"\r\n--xyz--\r\n"
    filler = size - len(part_head) - len(tail)
    head = (
        "POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode()
    body = part_head + b"c" * filler + tail
    before = _peak_rss(process.pid)
    chunks = [body[i:i + MIB] for i in range(0, len(body), MIB)]
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head)
        for part in chunks:
            sock.sendall(part)
        answer = sock.recv(65536)
    time.sleep(0.5)
    grown = _peak_rss(process.pid) - before
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    assert not answer.startswith(b"HTTP/1.1 5"), answer[:300]
    assert grown < BUDGET, f"a {size // MIB} MiB body grew the server by {grown / MIB:.0f} MiB"
