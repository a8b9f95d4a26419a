"""Bad files at ingest: each is reported by name with a reason, every good file is ingested (text
in other encodings decoded right), and the index stays consistent: Chroma, the keyword index and
the manifest list the same chunks, once each."""

from __future__ import annotations

import os
import re
import shutil

import pytest

pytest.register_assert_rewrite("tests.robustness")

import rag.index.ingestor  # noqa: E402
from rag.index.ingestor import Ingestor  # noqa: E402
from rag.index.manifest import Manifest  # noqa: E402
from tests.conftest import make_project  # noqa: E402
from tests.robustness import assert_index_consistent, writable_copy  # noqa: E402
from tests.robustness import rag as rag_cli  # noqa: E402 - `rag` is the package here
from tests.test_documents import PDF_LINES, make_pdf, text_stream  # noqa: E402

BUNDLED = 5
FORGE = "us-launches-global-critical-minerals-initiative-forge.txt"

# name -> the reason it must be skipped with (a regex)
BAD = {
    "empty.txt": r"^empty file$",
    "blank.md": r"^empty file$",
    "binary.txt": r"^binary file$",
    "huge.txt": r"^too large \(50\.0 MB > 20 MB\)$",
    "truncated.pdf": r"^not a valid PDF: ",
    "no-body.html": r"^no article text found$",
    "z-copy-of-forge.txt": rf"^duplicate of corpus/{re.escape(FORGE)}$",
    "loop": r"^symlinked folder, not followed$",
    "self.txt": r"^broken or looping symlink$",
    "dangling.md": r"^broken or looping symlink$",
    "notes.docx": r"^unsupported file type \.docx$",
    "vanishes-after-scan.txt": r"^cannot read file \(No such file or directory\)$",
    "vanishes-during-scan.md": r"^file vanished during ingest$",
}
# name -> exact text the stored article must contain (None: just ingested)
GOOD = {
    "latin1.txt": "The café in Zürich opened on Tuesday, said señor Müller. "
    "It serves crème brûlée and Weißbier.",
    "utf16-bom.txt": "The mayor of Łódź announced a tram line on Monday; the fare is 4 zł (≈ €0.93).",
    "cp1252.txt": "“We are ready,” the harbour master said – the season opens in May.",
    "utf8-bom.md": "Pëtersburg’s ferry ran 40 crossings on Sunday.",
    "report.pdf": PDF_LINES[1],
    "page.html": "The Halden water board approved the new reservoir on Wednesday after a long debate.",
    "deep/er/nested.md": "The Orvik lighthouse was relit on Friday after twelve years of darkness.",
}


def write_bad_and_good_files(corpus):
    for name in GOOD:
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
    title = "Town News From The Coast\n\n"
    (corpus / "latin1.txt").write_bytes((title + GOOD["latin1.txt"] + "\n").encode("latin-1"))
    (corpus / "utf16-bom.txt").write_bytes((title + GOOD["utf16-bom.txt"] + "\n").encode("utf-16"))
    (corpus / "cp1252.txt").write_bytes((title + GOOD["cp1252.txt"] + "\n").encode("cp1252"))
    (corpus / "utf8-bom.md").write_bytes(
        ("# Ferry Season\n\n" + GOOD["utf8-bom.md"] + "\n").encode("utf-8-sig")
    )
    (corpus / "report.pdf").write_bytes(make_pdf(text_stream(PDF_LINES)))
    (corpus / "page.html").write_text(
        "<html><head><title>Reservoir approved</title></head><body><nav><a href='/'>Home</a></nav>"
        f"<article><h1>Reservoir approved</h1><p>{GOOD['page.html']}</p>"
        "<p>Work on the dam will start next year, the board said.</p></article></body></html>"
    )
    (corpus / "deep/er/nested.md").write_text("# Lighthouse relit\n\n" + GOOD["deep/er/nested.md"] + "\n")

    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "blank.md").write_text(" \n\t\n  \n")
    (corpus / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 16)
    with open(corpus / "huge.txt", "wb") as huge:  # 50 MB of real text, written as one repeated block
        block = b"The quick brown fox jumps over the lazy dog. " * 23831  # 1 MiB, give or take
        for _ in range(50):
            huge.write(block)
        huge.truncate(50 * 2**20)
    pdf = make_pdf(text_stream(PDF_LINES))
    (corpus / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    (corpus / "no-body.html").write_text(
        "<html><head><title>Daily Planet</title><script>var a = 1;</script></head><body><header><nav><ul>"
        "<li><a href='/'>Home</a></li><li><a href='/world'>World</a></li><li><a href='/sport'>Sport</a></li>"
        "</ul></nav></header><footer><p>Contact us</p><p>Privacy policy</p></footer></body></html>"
    )
    shutil.copyfile(corpus / FORGE, corpus / "z-copy-of-forge.txt")
    os.symlink("..", corpus / "loop")  # a folder that contains itself, if followed
    os.symlink("self.txt", corpus / "self.txt")  # a file link to itself
    os.symlink("nowhere.md", corpus / "dangling.md")
    (corpus / "notes.docx").write_bytes(b"PK\x03\x04")
    (corpus / "vanishes-after-scan.txt").write_text(
        "Gone Soon\n\nThis article is deleted before it is read.\n"
    )
    (corpus / "vanishes-during-scan.md").write_text(
        "# Gone Sooner\n\nThis one is deleted while it is hashed.\n"
    )


@pytest.fixture
def vanishing_files(monkeypatch):
    """Delete one file between the scan and its reading, and another in the middle of the scan,
    as a user tidying the folder during an ingest would."""
    load_article, hash_file = rag.index.ingestor.load_article, rag.ingest.corpus.hash_file

    def deleted_before_load(path, *args):
        if path.name == "vanishes-after-scan.txt":
            path.unlink()
        return load_article(path, *args)

    def deleted_before_hash(path, *args):
        if path.name == "vanishes-during-scan.md":
            path.unlink()
        return hash_file(path, *args)

    monkeypatch.setattr(rag.index.ingestor, "load_article", deleted_before_load)
    monkeypatch.setattr(rag.ingest.corpus, "hash_file", deleted_before_hash)


def test_bad_files_are_reported_by_name_and_every_good_file_is_ingested(tmp_path, vanishing_files):
    settings = writable_copy(make_project(tmp_path))
    write_bad_and_good_files(settings.corpus_dir)
    report = Ingestor(settings).run(show_progress=False)

    skipped = dict(report.skipped)
    assert len(skipped) == len(report.skipped), "a file was reported twice"
    assert set(skipped) == {f"corpus/{name}" for name in BAD}, report.summary()
    for name, reason in BAD.items():
        assert re.search(reason, skipped[f"corpus/{name}"]), (name, skipped[f"corpus/{name}"])
        assert f"skipped corpus/{name}: " in report.summary()
    print(f"\n{len(BAD)} bad files rejected:\n" + "\n".join(f"  {s}: {r}" for s, r in report.skipped))

    assert sorted(report.added) == sorted(f"corpus/{name}" for name in [*GOOD, *_bundled()])
    assert len(report.added) == BUNDLED + len(GOOD)
    manifest = Manifest.load(settings.index_dir)
    for name, sentence in GOOD.items():
        text = (settings.index_dir / manifest.documents[f"corpus/{name}"].text_file).read_text()
        assert sentence in text, (name, text)
    snapshot = assert_index_consistent(settings)
    assert len(snapshot["documents"]) == BUNDLED + len(GOOD)

    again = Ingestor(settings).run(show_progress=False)
    assert not again.changed and not again.added
    assert {s for s, _ in again.skipped} == {f"corpus/{n}" for n in BAD if not n.startswith("vanishes")}
    assert assert_index_consistent(settings) == snapshot


def _bundled() -> set[str]:
    from tests.conftest import CORPUS

    return {p.name for p in CORPUS.glob("*.txt")}


def test_a_renamed_article_stays_in_the_index(tmp_path):
    """The rename is seen as a deletion plus a new file with known content: the new name must
    not be skipped as a duplicate of the old one, which is gone."""
    settings = writable_copy(make_project(tmp_path))
    Ingestor(settings).run(show_progress=False)
    old_ids = Manifest.load(settings.index_dir).documents[f"corpus/{FORGE}"].chunk_ids
    (settings.corpus_dir / FORGE).rename(settings.corpus_dir / "forge-renamed.txt")

    report = Ingestor(settings).run(show_progress=False)
    assert report.removed == [f"corpus/{FORGE}"] and report.added == ["corpus/forge-renamed.txt"]
    assert not report.skipped
    entry = Manifest.load(settings.index_dir).documents["corpus/forge-renamed.txt"]
    assert len(entry.chunk_ids) == len(old_ids)
    ids = set(assert_index_consistent(settings)["manifest_ids"])
    assert set(entry.chunk_ids) <= ids and not set(old_ids) & ids


def test_when_the_original_is_deleted_its_duplicate_takes_its_place(tmp_path):
    settings = writable_copy(make_project(tmp_path))
    shutil.copyfile(settings.corpus_dir / FORGE, settings.corpus_dir / "z-copy-of-forge.txt")
    first = Ingestor(settings).run(show_progress=False)
    assert first.skipped == [("corpus/z-copy-of-forge.txt", f"duplicate of corpus/{FORGE}")]

    (settings.corpus_dir / FORGE).unlink()
    report = Ingestor(settings).run(show_progress=False)
    assert report.removed == [f"corpus/{FORGE}"] and report.added == ["corpus/z-copy-of-forge.txt"]
    assert not report.skipped
    documents = assert_index_consistent(settings)["documents"]
    assert set(documents) == {f"corpus/{name}" for name in _bundled() - {FORGE}} | {
        "corpus/z-copy-of-forge.txt"
    }


def test_only_the_corpus_is_read_and_an_oversized_article_is_skipped_with_its_reason(tmp_path):
    """A real `rag ingest`: links that leave the corpus (to a file beside it, to /etc/passwd, and
    a link inside a subfolder) are skipped and reported, not read; so is a text far longer than
    any news article, which would otherwise take the better part of an hour to embed."""
    from tests.robustness import rag

    settings = writable_copy(make_project(tmp_path))
    corpus = settings.corpus_dir
    secret = tmp_path / "secret.txt"
    secret.write_text("Private Notes\n\nThe vault code of the Halden office is 4417, said the clerk.\n")
    os.symlink(secret, corpus / "notes.txt")
    os.symlink("/etc/passwd", corpus / "passwd.txt")
    (corpus / "sub").mkdir()
    os.symlink("../../secret.txt", corpus / "sub" / "relative.md")
    os.symlink(FORGE, corpus / "z-inside-link.txt")  # stays in the corpus: read (a duplicate here)
    novel = "A Very Long Text\n\n" + "The council met again on Monday and talked about the bridge. " * 6000
    (corpus / "novel.txt").write_text(novel)

    done = rag(tmp_path, "ingest", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("notes.txt", "passwd.txt", "sub/relative.md"):
        assert re.search(rf"skipped corpus/{re.escape(name)}: outside the corpus folder .*: not read", done.stdout)
    assert re.search(
        r"skipped corpus/novel.txt: too long for a news article \(3\d\d,\d{3} characters of text; "
        r"the limit is 300,000, RAG_MAX_ARTICLE_CHARS\)",
        done.stdout,
    ), done.stdout
    assert f"skipped corpus/z-inside-link.txt: duplicate of corpus/{FORGE}" in done.stdout
    manifest = Manifest.load(settings.index_dir)
    assert sorted(manifest.documents) == sorted(f"corpus/{name}" for name in _bundled())
    texts = [p.read_text() for p in (settings.index_dir / "articles").glob("*.txt")]
    assert texts and not any("4417" in text or "root:" in text for text in texts)

    # The limit is a setting: lowered, an ordinary new article is over it.
    (corpus / "brief.txt").write_text("A Short Brief\n\n" + "The ferry ran on time all week. " * 60)
    done = run_in_project_with(tmp_path, RAG_MAX_ARTICLE_CHARS="1000")
    assert re.search(r"skipped corpus/brief.txt: too long .*the limit is 1,000, RAG_MAX_ARTICLE_CHARS", done.stdout), done.stdout


def run_in_project_with(root, **env):
    import subprocess

    from tests.robustness import RAG, cli_env

    return subprocess.run(
        [*RAG, "ingest", "--quiet"], cwd=root, env={**cli_env(root), **env}, capture_output=True, text=True,
        timeout=300, check=False,
    )


# -- text that used to be lost or mangled without a word -------------------------------------------

DEEP_SENTENCE = "The Varn harbour reopened on Monday after the storm repairs were finished."
BROKEN_UTF8 = "The café in Zürich reopened on Tuesday, said señor Müller, who serves crème brûlée."


def deeply_nested_page(depth: int = 1000) -> str:
    """Past libxml2's 256 levels, where the article extractor loses the text."""
    return f"<html><body>{'<div>' * depth}<p>{DEEP_SENTENCE}</p>{'</div>' * depth}</body></html>"


def decompression_bomb_pdf(inflated_bytes: int = 100_000_000) -> bytes:
    """A one-page PDF whose 100 KB content stream inflates to 100 MB, past pypdf's 75 MB limit."""
    import zlib

    bomb = zlib.compress(b"0" * inflated_bytes, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb) + bomb + b"\nendstream",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def test_odd_files_are_read_with_the_fallback_said_or_refused_with_what_they_are(tmp_path):
    """Through `rag ingest` and `rag search`: deep markup is read, broken UTF-8 keeps its accents and
    says how many bytes were replaced, and a PDF decompression bomb is named as one, not a scan."""
    root = tmp_path / "project"
    writable_copy(make_project(root))
    corpus = root / "corpus"
    (corpus / "deep.html").write_text(deeply_nested_page())
    broken = f"Cafe News From Zurich\n\n{BROKEN_UTF8}\n".encode().replace(b"Tuesday", b"Tues\xff\xfeday")
    (corpus / "broken-utf8.txt").write_bytes(broken)
    (corpus / "bomb.pdf").write_bytes(decompression_bomb_pdf())

    done = rag_cli(root, "ingest", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "skipped corpus/bomb.pdf: a decompression bomb: a compressed stream expands past pypdf's limit" in (
        done.stdout
    ), done.stdout
    assert "note corpus/deep.html: the article extractor found no text (markup nested too deep?)" in done.stdout
    assert "note corpus/broken-utf8.txt: not valid UTF-8: 2 broken byte sequence(s) replaced" in done.stdout
    assert not any(line.startswith("skipped") and "bomb.pdf" not in line for line in lines), done.stdout
    assert "2 added" not in done.stdout and "7 added" in done.stdout, done.stdout

    found = rag_cli(root, "search", "Varn harbour storm repairs reopened")
    assert DEEP_SENTENCE in found.stdout, found.stdout
    found = rag_cli(root, "search", "cafe in Zurich creme brulee")
    assert "café in Zürich" in found.stdout and "crème brûlée" in found.stdout and "Ã" not in found.stdout, found.stdout
