"""Access: uploads cannot steer where a file lands: whatever name a client sends, the file is
stored inside `<corpus>/uploads/` under a safe name, or refused with a clear message; and uploads
are limited by type and size. Checked on the library the chat uses, and over HTTP on the real
server with hand-made multipart requests (a client library would clean the names before we could).

tests/test_ui.py covers serving: a non-local address refused without RAG_UI_AUTH and the API behind
the login when it is set. Added here: the default address, the socket the server really listens
on, and more addresses and logins that must be refused."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from rag.cli import build_parser
from rag.settings import Settings
from ui.safety import UnsafeServe, check_bind, parse_auth
from ui.uploads import Library, RejectedUpload, safe_name

pytest_plugins = ["tests.ui_server", "tests.robustness_server"]

SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}\.(?:txt|md|markdown|html|htm|pdf)")
HOSTILE_NAMES = [
    "../../etc/passwd.txt",
    "/abs/path.md",
    "..\\\\win.txt",
    ".hidden.md",
    "a/b/c.html",
    "nul\x00byte.txt",
    "new\nline.md",
    "carriage\rreturn.txt",
    "x" * 296 + ".txt",
    "rés umé–naïve (1).md",
    "semi;colon`$(id)`.txt",
    "....md",
    "CON.txt",
]
REFUSED_TYPES = ["run.exe", "noext", "archive.tar.gz", "page.txt.sh", "payload.txt\x00.exe"]


def article(n: int, name: str = "") -> str:
    """A small article unlike any other upload (made-up kite festivals: no answer depends on them),
    as a page when the name says HTML."""
    text = (
        f"Kite Festival Report {n}\n\nThe {n}th kite festival of Brisbury drew {n * 37 + 11} flyers "
        f"on Saturday, and kite number {n * 3} stayed aloft for {n + 2} hours.\n"
    )
    if name.endswith((".html", ".htm")):
        return f"<html><body><article><p>{text}</p></article></body></html>"
    return text


def stored_files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()} if folder.exists() else {}


# -- the library the chat uses ---------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES + REFUSED_TYPES)
def test_safe_name_is_plain_or_refused(name):
    try:
        stored = safe_name(name)
    except RejectedUpload as refused:
        assert name in REFUSED_TYPES
        assert re.fullmatch(r"unsupported file type '.*' \(allowed: .*\)", refused.reason)
        return
    assert name not in REFUSED_TYPES and SAFE.fullmatch(stored), (name, stored)


def test_library_stores_every_name_inside_uploads(tmp_path):
    """Names a file system allows (no '/' or NUL) go through the library as they would from the chat."""
    settings = Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    settings.corpus_dir.mkdir()
    sent = tmp_path / "sent"
    sent.mkdir()
    names = [n for n in HOSTILE_NAMES + REFUSED_TYPES if "/" not in n and "\x00" not in n and len(n) < 255]
    paths = []
    for n, name in enumerate(names):
        (sent / name).write_text(article(n, name))
        paths.append(sent / name)
    too_big = sent / "too-big.txt"
    with open(too_big, "wb") as out:
        out.truncate(settings.max_file_bytes + 1)
    result = Library(settings).add([*paths, too_big])

    outcomes = {f.name: f for f in result.files}
    assert set(outcomes) == {*names, "too-big.txt"}
    assert re.fullmatch(r"too large \(20\.0 MB; the limit is 20 MB\)", outcomes["too-big.txt"].message)
    assert not outcomes["too-big.txt"].added
    for name in names:
        assert outcomes[name].added != (name in REFUSED_TYPES), (name, outcomes[name].message)
        if name in REFUSED_TYPES:
            assert outcomes[name].message.startswith("unsupported file type"), outcomes[name].message
    uploads = settings.corpus_dir / "uploads"
    stored = stored_files(uploads)
    assert all(SAFE.fullmatch(name) for name in stored), sorted(stored)
    assert sorted(stored.values()) == sorted(
        article(n, name) for n, name in enumerate(names) if name not in REFUSED_TYPES
    )
    assert [
        p
        for p in tmp_path.rglob("*")
        if p.is_file()
        and not p.is_relative_to(uploads)
        and not p.is_relative_to(sent)
        and not p.is_relative_to(settings.index_dir)
    ] == []
    assert result.added == len([n for n in names if n not in REFUSED_TYPES]) == len(stored)


# -- over HTTP, on the real server -----------------------------------------------------------------


def http_upload(url: str, filename: str, content: bytes) -> tuple[int, object]:
    """POST one file to Gradio's upload route with `filename` exactly as given."""
    boundary = uuid.uuid4().hex
    disposition = f'form-data; name="files"; filename="{filename}"'.encode("utf-8", "surrogateescape")
    body = (
        f"--{boundary}\r\n".encode()
        + b"Content-Disposition: "
        + disposition
        + b"\r\nContent-Type: text/plain\r\n\r\n"
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url + "gradio_api/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode(errors="replace")


def call_upload_api(url: str, files: list[dict]) -> tuple[str, object]:
    """`/upload` called over plain HTTP, with FileData whose orig_name is the hostile one."""
    call = urllib.request.Request(
        url + "gradio_api/call/upload",
        data=json.dumps({"data": [files]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(call, timeout=60) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/upload/{event_id}", timeout=300) as stream:
        lines = stream.read().decode().splitlines()
    event = next(
        line.split(": ", 1)[1] for line in lines if line.startswith("event: ") and "heartbeat" not in line
    )
    data = next(line.split(": ", 1)[1] for line in reversed(lines) if line.startswith("data: "))
    return event, json.loads(data)


def project_files(root: Path) -> set[Path]:
    """Every file of the server's project except the index, the logs and the uploads folder."""
    skip = (root / "index", root / "corpus" / "uploads")
    return {p for p in root.rglob("*") if p.is_file() and not any(p.is_relative_to(s) for s in skip)}


def test_hostile_upload_names_over_http_land_inside_uploads(robustness_server):
    uploads = robustness_server.root / "corpus" / "uploads"
    outside_before, stored_before = project_files(robustness_server.root), stored_files(uploads)
    sent, refused_by_http = [], {}
    for n, name in enumerate(HOSTILE_NAMES + REFUSED_TYPES, start=100):
        status, body = http_upload(robustness_server.url, name, article(n, name).encode())
        if status != 200:
            refused_by_http[name] = (status, body)
            continue
        sent.append({"path": body[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}})
    # A raw line break inside the part's header may be refused by Gradio's parser (a 4xx), never misread.
    assert set(refused_by_http) <= {"new\nline.md", "carriage\rreturn.txt"}, refused_by_http
    assert all(400 <= status < 500 for status, _ in refused_by_http.values()), refused_by_http

    event, result = call_upload_api(robustness_server.url, sent)
    assert event == "complete", result
    (outcome,) = result
    messages = {f["name"]: f for f in outcome["files"]}
    assert len(outcome["files"]) == len(sent)
    refused = [f for f in outcome["files"] if not f["added"]]
    assert all(f["message"].startswith("unsupported file type") for f in refused), refused
    assert len(refused) == len(REFUSED_TYPES) - sum(n in refused_by_http for n in REFUSED_TYPES)
    new = {name: text for name, text in stored_files(uploads).items() if name not in stored_before}
    assert len(new) == outcome["added"] == len(sent) - len(refused)
    assert all(SAFE.fullmatch(name) for name in new), sorted(new)
    assert project_files(robustness_server.root) == outside_before, "a file landed outside the uploads folder"
    for escaped in (
        Path("/etc/passwd.txt"),
        Path("/abs/path.md"),
        robustness_server.root.parent / "passwd.txt",
    ):
        assert not escaped.exists()
    print(
        f"\n{len(HOSTILE_NAMES + REFUSED_TYPES)} hostile names: {outcome['added']} stored inside uploads/ as "
        f"{sorted(new)}, {len(refused)} refused by type, {len(refused_by_http)} refused by HTTP; "
        f"messages: {sorted({f['message'] for f in refused})}; {len(messages)} outcomes"
    )


def test_uploads_are_limited_by_size_over_http(robustness_server, tmp_path):
    status, body = http_upload(robustness_server.url, "big.txt", b"a" * (Settings().max_file_bytes + 1))
    assert status == 413 and "maximum allowed size" in body


def test_the_upload_api_refuses_an_empty_call_and_files_not_uploaded_by_the_client(robustness_server):
    event, result = call_upload_api(robustness_server.url, [])
    assert event == "error" and "Attach at least one file" in json.dumps(result)
    planted = robustness_server.root / "corpus" / "ani-2026-critical-minerals-ministerial-project-vault.txt"
    event, result = call_upload_api(
        robustness_server.url, [{"path": str(planted), "meta": {"_type": "gradio.FileData"}}]
    )
    assert event == "error" and "not a path on the server" in json.dumps(result), result  # not {"error": null}
    assert not (robustness_server.root / "corpus" / "uploads" / planted.name).exists()


# -- where the chat listens ------------------------------------------------------------------------


def test_rag_serve_listens_on_loopback_by_default():
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, from /proc (hex, as the kernel shows them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_server_socket_is_bound_to_loopback_only(robustness_server):
    port = int(robustness_server.url.rstrip("/").rsplit(":", 1)[1])
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing on 0.0.0.0 or ::


@pytest.mark.parametrize(
    "host",
    [
        "0.0.0.0",
        "::",
        "",
        "0",
        "192.168.1.10",
        "10.0.0.1",
        "example.com",
        "localhost.example.com",
        "127.0.0.1.nip.io",
    ],
)
def test_any_address_but_loopback_needs_a_login(host):
    with pytest.raises(UnsafeServe, match="RAG_UI_AUTH"):
        check_bind(host, None)
    check_bind(host, ("reader", "s3cret"))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_login(host):
    check_bind(host, None)


@pytest.mark.parametrize("auth", [":password", "user:", ":", "userpassword"])
def test_a_login_missing_a_part_is_refused(auth):
    with pytest.raises(UnsafeServe, match="user:password"):
        parse_auth(auth)


# -- uploads leave nothing behind and hold up no answer ----------------------------------------------


def test_gradio_copies_of_uploads_are_removed_once_handled(robustness_server):
    tag = uuid.uuid4().hex[:8]
    kept = http_upload(robustness_server.url, f"kept-{tag}.txt", article(700).encode())[1][0]
    refused = http_upload(robustness_server.url, f"refused-{tag}.txt", b"")[1][0]  # an empty file
    assert Path(kept).exists() and Path(refused).exists()
    files = [{"path": path, "meta": {"_type": "gradio.FileData"}} for path in (kept, refused)]
    event, (outcome,) = call_upload_api(robustness_server.url, files)
    assert event == "complete" and [f["added"] for f in outcome["files"]] == [True, False], outcome
    assert not Path(kept).exists() and not Path(refused).exists()


def long_article(chunks: int) -> str:
    """A made-up council report of about `chunks` passages: many generated articles' sentences
    under one title (long, but under the news-article limit)."""
    import random

    from tests.robustness import generated_article

    rng = random.Random(5)
    bodies = [generated_article(n, rng)[1].split("\n\n", 1)[1] for n in range(chunks // 3)]
    return "Annual Council Digest of the Coast Towns\n\n" + "\n\n".join(bodies)


def test_a_large_upload_does_not_hold_up_answers(robustness_server, ui_client, tmp_path):
    """Before the fix the embedder's lock was held for a whole ingest batch, and an answer during
    a large upload waited for it (one got nothing in 105 s)."""
    import statistics
    import threading
    import time

    from gradio_client import handle_file

    client = ui_client(robustness_server.url)

    def timed_answer() -> float:
        started = time.perf_counter()
        assert "10 billion" in client.predict("What did EXIM approve under Project Vault?", api_name="/ask")["answer"]
        return time.perf_counter() - started

    alone = [timed_answer() for _ in range(3)]
    digest = tmp_path / "council-digest.txt"
    digest.write_text(long_article(160))
    uploaded: dict = {}
    upload = threading.Thread(
        target=lambda: uploaded.update(ui_client(robustness_server.url).predict([handle_file(str(digest))], api_name="/upload"))
    )
    started = time.perf_counter()
    upload.start()
    during = []
    while upload.is_alive():
        during.append(timed_answer())
    upload.join()
    took = time.perf_counter() - started
    assert uploaded["added"] == 1, uploaded
    print(
        f"\nanswers alone: median {statistics.median(alone):.2f}s; during a {took:.0f}s upload of "
        f"{uploaded['files'][0]['message']}: {len(during)} answers, median {statistics.median(during):.2f}s, "
        f"slowest {max(during):.2f}s"
    )
    assert len(during) >= 3
    # The upload shares the two cores, so answers slow down, but none waits for the upload.
    assert max(during) < max(10 * statistics.median(alone), 5.0) and max(during) < took / 2


def test_an_upload_cut_off_mid_ingest_is_removed_at_the_next_start(tmp_path):
    from rag.index.ingestor import Ingestor
    from tests.conftest import make_project
    from ui.uploads import JOURNAL_NAME, UPLOADS_FOLDER

    settings = make_project(tmp_path)
    Ingestor(settings).run(show_progress=False)
    library = Library(settings)
    library.add([_write(tmp_path / "finished.txt", article(801))])
    # What a server stopped mid-ingest leaves: the copy stored and journaled, the index without it.
    uploads = settings.corpus_dir / UPLOADS_FOLDER
    _write(uploads / "cut-off.txt", article(802))
    (uploads / JOURNAL_NAME).write_text("cut-off.txt\n")
    Library(settings)
    assert sorted(p.name for p in uploads.iterdir()) == ["finished.txt"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
