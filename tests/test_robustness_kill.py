"""`kill -9` of a real `rag ingest` process at random points, during the first build, during an
update (changed, renamed, added and deleted files) and during a deletion-only run. After the kills
the next `rag ingest` completes, and the index is exactly what an uninterrupted ingest of the same
files builds: the same documents, hashes and chunk ids in the manifest, in Chroma and in the
keyword index, with no duplicate, orphan or missing chunk, and the same answer to a question.

Chunk ids are derived from the source path and the content hash, so the reference index, built
in this process without interruption, must match id for id. The killed index is written by other
processes, so it is read in a subprocess until the very end (a Chroma client opened here would
serve what it cached).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.robustness")

from rag.assistant import Assistant  # noqa: E402
from rag.index.ingestor import Ingestor  # noqa: E402
from rag.settings import Settings  # noqa: E402
from tests.conftest import PROJECT_ROOT, make_project  # noqa: E402
from tests.processes import stop_process  # noqa: E402
from tests.robustness import (  # noqa: E402
    CLI_TIMEOUT_S,
    RAG,
    assert_index_consistent,
    check_consistent,
    cli_env,
    contents,
    generated_article,
    rag,
    snapshot_in_subprocess,
    writable_copy,
    write_generated_articles,
)

SEED = 20260204
GENERATED = 40
EXIM = "What did EXIM approve under Project Vault?"
PROBE = [*RAG[:1], "-m", "tests.robustness"]
ORPHANS_CLEARED = re.compile(r"Cleared (\d+) chunks left by an interrupted ingest")


WRITE_WINDOW_S = 0.3  # the upsert, the commit and the clean-up of these corpora take about this long
SENTENCE_WINDOW_S = 0.03  # writing these corpora's sentence-vector files takes about this long
# "anywhere" kills fall in this first part of the reference run's time: the killed run's own time
# varies with the machine's load, and a kill timed past its commit found nothing left to kill in
# its phase (the slow test once had 5 of 10 kills land, under the load of a parallel test run).
# The end of a run is covered by the "writing" kills.
ANYWHERE_SHARE = 0.7


@dataclass
class Kill:
    phase: str
    aim: str  # "anywhere": a random point of the run; "writing": a random point once it writes the index
    trigger: str  # what the delay counted from: the ingest lock, the first store write, or the commit
    delay: float
    killed: bool  # False when the run finished before the kill came
    committed: bool  # the manifest had been replaced when the process died

    def describe(self) -> str:
        if not self.killed:
            return (
                f"{self.phase}: kill aimed {self.aim}, +{self.delay:.3f}s after {self.trigger}: "
                "the run had finished"
            )
        when = "after the commit (in the clean-up)" if self.committed else "before the commit"
        return f"{self.phase}: kill -9 aimed {self.aim}, +{self.delay:.3f}s after {self.trigger}, {when}"


class IngestWatch:
    """Sees, from outside, how far a running ingest has got: it took the lock, it staged its first
    article text (the store writes that follow are its upserts), it wrote the store, it committed."""

    def __init__(self, index: Path):
        self.index = index
        self.lock = self._stamp(".ingest.lock")
        self.store = self._stamp("chroma/chroma.sqlite3")
        self.manifest = self._stamp("manifest.json")
        self.articles = self._articles()
        self.staged_store: int | None = None  # the store's stamp when the first text was staged

    def _stamp(self, name: str) -> int | None:
        try:
            return (self.index / name).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _articles(self) -> set[tuple[str, int]]:
        """The staged article texts with their times: a retried run rewrites the same names."""
        folder = self.index / "articles"
        try:
            return {(entry.name, entry.stat().st_mtime_ns) for entry in os.scandir(folder)}
        except FileNotFoundError:  # not created yet, or a text deleted while listed
            return set()

    def sentence_files_begun(self) -> bool:
        """The run writes its first sentence-vector file (after its upserts, before its commit)."""
        return any(".sentences." in name for name, _ in self._articles() - self.articles)

    def locked(self) -> bool:
        return self._stamp(".ingest.lock") != self.lock

    def writing(self) -> str | None:
        """What the run is writing now, once it is past staging; None before."""
        if self._stamp("manifest.json") != self.manifest:
            return "the commit"
        if self.staged_store is None and self._articles() - self.articles:
            self.staged_store = self._stamp("chroma/chroma.sqlite3")
        if self.staged_store is not None and self._stamp("chroma/chroma.sqlite3") != self.staged_store:
            return "the first store write"
        return None


def kill_ingest(root: Path, rng: random.Random, phase: str, aim: str, run_seconds: float) -> Kill:
    """Start `rag ingest` and SIGKILL it at a random point: anywhere in the run (counted from the
    moment it takes the ingest lock, the model being loaded by then), or within its writes."""
    watch = IngestWatch(root / "index")
    manifest = root / "index" / "manifest.json"
    manifest_before = manifest.read_bytes() if manifest.exists() else None
    with running_ingest(root, cli_env(root)) as process:
        trigger = _wait_for(process, root, watch, aim)
        window = {"anywhere": ANYWHERE_SHARE * run_seconds, "sentence vectors": SENTENCE_WINDOW_S}
        delay = rng.uniform(0, window.get(aim, WRITE_WINDOW_S))
        if trigger:
            time.sleep(delay)
        process.send_signal(signal.SIGKILL)  # does nothing if it has exited
        process.wait(timeout=60)
    # Killed, or finished just before the signal (under load the poll above can oversleep):
    # judged by how it ended, not by a check made an instant before the kill.
    assert process.returncode in (-signal.SIGKILL, 0), (root / "ingest.log").read_text()[-3000:]
    killed = process.returncode == -signal.SIGKILL
    committed = (manifest.read_bytes() if manifest.exists() else None) != manifest_before
    return Kill(phase, aim, trigger or "the end of the run", delay, killed, committed)


@contextmanager
def running_ingest(root: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A `rag ingest` process logging to root/ingest.log, killed if still running at the end."""
    with open(root / "ingest.log", "ab") as log:
        process = subprocess.Popen([*RAG, "ingest", "--quiet"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_process(process, kill=True)


def _wait_for(process: subprocess.Popen, root: Path, watch: IngestWatch, aim: str) -> str | None:
    """Poll until the moment the kill's delay counts from; None when the run ended first."""
    deadline = time.monotonic() + CLI_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.returncode == 0, (root / "ingest.log").read_text()[-3000:]
            return None
        if watch.locked():
            what = _trigger(watch, aim)
            if what:
                return what
        time.sleep(0.002)
    raise TimeoutError("rag ingest did not get going")


def _trigger(watch: IngestWatch, aim: str) -> str | None:
    if aim == "anywhere":
        return "the ingest lock"
    if aim == "sentence vectors":
        return "the first sentence-vector file" if watch.sentence_files_begun() else None
    return watch.writing()


def complete_ingest(root: Path) -> int:
    """A plain `rag ingest` after the kills: it must succeed. Returns the orphans it cleared."""
    done = rag(root, "ingest", "--quiet")
    assert done.returncode == 0, f"rag ingest failed after a kill:\n{done.stdout}\n{done.stderr[-3000:]}"
    cleared = ORPHANS_CLEARED.search(done.stdout)
    return int(cleared.group(1)) if cleared else 0


def ask_json(root: Path, question: str) -> dict:
    done = rag(root, "ask", question, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def answer_key(answer: dict) -> tuple:
    return answer["answer"], [c["chunk_id"] for c in answer["citations"]]


def update_corpus(corpus: Path) -> None:
    """Two changed, one renamed, two new and two deleted articles: every kind of update at once."""
    generated = lambda n: next(corpus.glob(f"*-{n:03d}.txt"))  # noqa: E731
    for path in (corpus / "foxbusiness-us-japan-critical-minerals-rare-earths-deal.txt", generated(0)):
        with open(path, "a") as article:
            article.write("\nA follow-up report is expected next month, the officials added.\n")
    generated(5).rename(corpus / "renamed-report.txt")
    (corpus / "greenwatch-2024-10-04-us-india-critical-minerals-mou.txt").unlink()
    generated(3).unlink()
    write_generated_articles(corpus, 2, seed=SEED + 1, start=GENERATED)


def delete_many(corpus: Path) -> None:
    """Half the generated articles at once."""
    for path in sorted(corpus.glob("*-0[1-2]?.txt")):
        path.unlink()


def run_kill_scenario(tmp_path: Path, kills: dict[str, list[str]], check_reads: bool) -> list[Kill]:
    """Build, update and (when asked) delete, killing each phase's ingest once per entry of
    `kills[phase]`, at a seeded random point: "anywhere" in the run, or while it is "writing".
    A failure keeps its evidence (see keep_evidence)."""
    history: list[Kill] = []
    with keep_evidence(tmp_path, history):
        return _kill_scenario(tmp_path, kills, check_reads, history)


@contextmanager
def keep_evidence(tmp_path: Path, history: list[Kill]) -> Iterator[None]:
    """On failure, copy the killed project (its corpus, index and ingest.log) and the kills so far
    to test-output/kill/, which outlives pytest's temporary folders: a failure that comes once in
    many runs must be readable afterwards."""
    try:
        yield
    except BaseException:
        kept = PROJECT_ROOT / "test-output" / "kill" / f"{tmp_path.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.copytree(tmp_path / "killed", kept, dirs_exist_ok=True, ignore_dangling_symlinks=True)
        (kept / "kills.txt").write_text("\n".join(kill.describe() for kill in history) + "\n")
        print(f"kept the killed project and its ingest.log in {kept}", flush=True)
        raise


def _kill_scenario(tmp_path: Path, kills: dict[str, list[str]], check_reads: bool, history: list[Kill]) -> list[Kill]:
    rng = random.Random(SEED)
    reference = writable_copy(make_project(tmp_path / "reference"))
    write_generated_articles(reference.corpus_dir, GENERATED, seed=SEED)
    root = tmp_path / "killed"
    root.mkdir()
    shutil.copytree(reference.corpus_dir, root / "corpus")
    phases = [("first build", lambda corpus: None), ("update", update_corpus), ("deletion", delete_many)]
    for phase, change in phases:
        if phase not in kills:
            continue
        change(reference.corpus_dir)
        change(root / "corpus")
        report = Ingestor(reference).run(show_progress=False)
        assert report.changed and not report.skipped, report.summary()
        expected = assert_index_consistent(reference)
        committed_answer = ask_json(root, EXIM) if check_reads and phase != "first build" else None
        for aim in kills[phase]:
            kill = kill_ingest(root, rng, phase, aim, report.seconds)
            history.append(kill)
            print(kill.describe(), flush=True)
            if committed_answer and kill.killed:
                # Readers trust only what the manifest lists: whatever the killed run left behind,
                # the question is answered from the last committed index.
                answer = ask_json(root, EXIM)
                assert "10 billion" in answer["answer"]
                if not kill.committed:
                    assert answer_key(answer) == answer_key(committed_answer)
        cleared = complete_ingest(root)
        print(f"{phase}: the next `rag ingest` completed and cleared {cleared} orphan chunks", flush=True)
        got = snapshot_in_subprocess(root)
        check_consistent(got)
        assert contents(got) == contents(expected), (
            f"after the {phase} kills the index differs from the reference"
        )
        print(
            f"{phase}: {len(got['documents'])} documents, {len(got['manifest_ids'])} chunks, identical to "
            "the uninterrupted reference",
            flush=True,
        )

    killed = settings_of(root)
    final = assert_index_consistent(killed)  # opened here for the first time: nothing cached
    assert contents(final) == contents(assert_index_consistent(reference))
    expected = Assistant(reference).ask(EXIM)
    got = ask_json(root, EXIM) if check_reads else Assistant(killed).ask(EXIM).to_dict()
    assert answer_key(got) == answer_key(expected.to_dict())
    assert "10 billion" in got["answer"]
    delivered = [k for k in history if k.killed]
    print(
        f"{len(delivered)} kills survived ({sum(k.committed for k in delivered)} after a commit), "
        f"{len(history) - len(delivered)} came after the run had finished; nothing lost",
        flush=True,
    )
    assert delivered, "no kill landed while an ingest was running"
    return history


def settings_of(root: Path) -> Settings:
    return Settings(corpus_dir=root / "corpus", index_dir=root / "index")


def test_kill_9_during_build_and_update_loses_nothing(tmp_path):
    run_kill_scenario(tmp_path, {"first build": ["writing"], "update": ["writing"]}, check_reads=False)


def test_kill_9_while_sentence_vectors_are_written_loses_nothing(tmp_path):
    history = run_kill_scenario(
        tmp_path, {"first build": ["sentence vectors"] * 3, "update": ["sentence vectors"] * 2}, check_reads=False
    )
    assert any(k.killed and not k.committed for k in history), "no kill landed before a commit"


@pytest.mark.slow
def test_many_kills_during_build_update_and_deletion_lose_nothing(tmp_path):
    kills = {
        # "anywhere" first in each phase, timed to land before the commit; a "writing" kill may land
        # after it, in the clean-up, and then the phase has no work left for the kills after it.
        "first build": ["anywhere", "anywhere", "writing", "writing", "writing"],
        "update": ["anywhere", "writing", "writing"],
        "deletion": ["anywhere", "writing"],
    }
    history = run_kill_scenario(tmp_path, kills, check_reads=True)
    for phase in kills:
        assert any(k.killed for k in history if k.phase == phase), f"no kill landed in the {phase}"
    assert sum(k.killed for k in history) >= 5


# -- Chroma's embedded store on its own ------------------------------------------------------------

CHROMA_KILLS = 12
CHROMA_BATCH = 500  # past Chroma's HNSW sync threshold (1,000) every other batch: it saves its index files


def kill_chroma_writer(root: Path, start: int, delay: float) -> list[tuple[str, str, int, int]]:
    """Run the probe writer for `delay` seconds after it opened the store, SIGKILL it, and return
    the operations it logged: (begin|acked, upsert|delete, first id, end id)."""
    process = subprocess.Popen(
        [*PROBE, "chroma-writer", str(root / "corpus"), str(root / "index"), str(start), str(CHROMA_BATCH)],
        cwd=root,
        env=cli_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        logged = process.stdout.read().splitlines()
    finally:
        process.kill()
        process.wait()
    return [(state, op, int(first), int(end)) for state, op, first, end in (line.split() for line in logged)]


def acknowledged(operations, expected: set[str]) -> tuple[set[str], tuple | None]:
    """The ids that must be in the store after these operations, and the one in flight at the kill."""
    in_flight = None
    for state, op, first, end in operations:
        ids = {f"probe-{n:08d}" for n in range(first, end)}
        if state == "begin":
            in_flight = (op, ids)
        else:
            expected = expected | ids if op == "upsert" else expected - ids
            in_flight = None
    return expected, in_flight


@pytest.mark.slow
def test_chroma_embedded_store_killed_mid_write(tmp_path):
    """Chroma 1.5.9's embedded store, killed while it writes (random vectors, no model): every
    acknowledged write survives and a write in flight is all or nothing, as long as the store
    opens. A kill while it saves its HNSW files can leave it unreadable for good (a segfault, or
    "Failed to apply logs to the hnsw segment writer": chroma-core/chroma#7510, #7678); this test
    reports that when it happens and checks the way back: `rag ingest --rebuild` rebuilds the
    index from the corpus, so no article is lost."""
    rng = random.Random(SEED)
    root = tmp_path / "project"
    writable_copy(make_project(root))
    expected: set[str] = set()
    start, damage, survived = 0, None, 0
    for cycle in range(CHROMA_KILLS):
        delay = rng.uniform(0.3, 6.0)
        operations = kill_chroma_writer(root, start, delay)
        expected, in_flight = acknowledged(operations, expected)
        start = max([end for *_, end in operations] + [start]) + CHROMA_BATCH
        check = subprocess.run(
            [*PROBE, "chroma-check", str(root / "corpus"), str(root / "index")],
            cwd=root,
            env=cli_env(root),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
        )
        if check.returncode != 0:
            last = (check.stderr.strip().splitlines() or [f"killed by signal {-check.returncode}"])[-1]
            damage = (
                f"kill {cycle + 1} at +{delay:.2f}s left the store unreadable: "
                f"exit {check.returncode}, {last}"
            )
            print(damage, flush=True)
            break
        state = json.loads(check.stdout)
        stored = set(state["ids"])
        if in_flight:
            op, ids = in_flight
            applied = ids & stored if op == "upsert" else ids - stored
            assert applied in (set(), ids), f"the {op} in flight at the kill was half applied"
            if applied:
                expected = expected | ids if op == "upsert" else expected - ids
        assert stored == expected, (
            f"{len(expected - stored)} acknowledged ids lost, {len(stored - expected)} extra"
        )
        assert state["count"] == len(stored) and state["query_hits"] == 10 and state["vectors_ok"]
        survived += 1
        print(
            f"kill {cycle + 1} at +{delay:.2f}s: store intact, {len(stored)} vectors, every acknowledged "
            f"write kept{f', the {in_flight[0]} in flight applied whole' if in_flight else ''}",
            flush=True,
        )

    plain = rag(root, "ingest", "--quiet")
    if damage:
        line = (plain.stderr.strip().splitlines() or [""])[-1]
        print(f"then `rag ingest`: exit {plain.returncode}: {line[:300]}", flush=True)
        assert "Traceback" not in plain.stderr or plain.returncode < 0, plain.stderr[-2000:]
    else:
        assert plain.returncode == 0, plain.stderr[-2000:]
        assert f"Cleared {len(expected)} chunks left by an interrupted ingest" in plain.stdout
    rebuilt = rag(root, "ingest", "--rebuild", "--quiet")
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    after = snapshot_in_subprocess(root)
    check_consistent(after)
    assert len(after["documents"]) == 5 and "10 billion" in ask_json(root, EXIM)["answer"]
    print(
        f"{survived} kills left the store intact; {'then: ' + damage if damage else 'no damage seen'}; "
        "`rag ingest --rebuild` restored the index from the corpus",
        flush=True,
    )


# -- why the slow kill test failed once ------------------------------------------------------------

ORPHAN_QUESTIONS = [
    EXIM,
    "Who hosted the 2026 Critical Minerals Ministerial?",
    "How much did the DFC commit for tungsten in Kazakhstan?",
    "What does the acronym FORGE stand for?",
    "Which country was given the initial chairmanship of FORGE?",
    "How large is Germany's national critical-minerals fund?",
]


def test_chunks_an_ingest_left_uncommitted_change_no_retrieval(tmp_path):
    """After a kill before the commit, the store holds chunks no manifest lists. The dense search
    used to fetch the n nearest and drop those, so they pushed committed chunks out of the fused
    ranking: 4 of these 6 questions retrieved other passages, and the slow kill test's check that
    an answer after a kill equals the committed index's could fail, depending on where the kill
    landed. The reader now looks past them."""
    import numpy as np

    from rag.index.manifest import Manifest
    from rag.index.store import open_vector_store

    settings = make_project(tmp_path)
    Ingestor(settings).run(show_progress=False)
    clean = Assistant(settings)
    before = {q: [p.chunk_id for p in clean.search(q).passages] for q in ORPHAN_QUESTIONS}
    store = open_vector_store(settings, Manifest.load(settings.index_dir).embed_model)
    for n, question in enumerate(ORPHAN_QUESTIONS):  # copies of each question's nearest chunks, uncommitted
        nearest = store.get([cid for cid, _ in store.nearest(clean.embedder.embed_one(question), 20)])
        store.upsert([f"uncommitted{n}-{c.id}" for c in nearest], np.vstack([c.vector for c in nearest]),
                     [c.text for c in nearest], [c.metadata for c in nearest])
    reader = Assistant(settings)
    assert {q: [p.chunk_id for p in reader.search(q).passages] for q in ORPHAN_QUESTIONS} == before


# -- a large ingest keeps its progress -------------------------------------------------------------

LARGE_CORPUS = 520
COMMIT_CHUNKS = 100


def write_short_articles(folder: Path, count: int) -> None:
    """`count` one-passage articles: the opening and closing sentences of generated ones, so that
    a 500-article corpus embeds in well under a minute."""
    rng = random.Random(SEED)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        name, text = generated_article(index, rng)
        title, body = text.split("\n\n", 1)
        sentences = body.split(". ")
        (folder / name).write_text(f"{title}\n\n{'. '.join(sentences[:3] + sentences[-1:])}")


def committed_generation(manifest: Path) -> int:
    try:
        return json.loads(manifest.read_text())["generation"]
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or being replaced
        return 0


def test_a_killed_large_ingest_loses_at_most_one_batch(tmp_path):
    """`rag ingest` of 520 articles commits every RAG_INGEST_COMMIT_CHUNKS chunks; killed with -9
    after a few commits, the committed articles stay answerable, and the next run clears at most one
    batch of uncommitted chunks, embeds only what was never committed, and ends in a consistent index."""
    rng = random.Random(SEED)
    root = tmp_path / "large"
    write_short_articles(root / "corpus", LARGE_CORPUS)
    env = {**cli_env(root), "RAG_INGEST_COMMIT_CHUNKS": str(COMMIT_CHUNKS)}
    manifest = root / "index" / "manifest.json"
    with running_ingest(root, env) as process:
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while committed_generation(manifest) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 2))
        assert process.poll() is None, "the ingest finished before the kill: make the corpus larger"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)

    killed = snapshot_in_subprocess(root)
    committed = len(killed["documents"])
    assert committed >= 3 * COMMIT_CHUNKS // 2, f"only {committed} articles committed before the kill"
    assert killed["keyword_ids"] == killed["manifest_ids"] and set(killed["manifest_ids"]) <= set(killed["chroma_ids"])
    uncommitted = len(killed["chroma_ids"]) - len(killed["manifest_ids"])
    first = next(iter(killed["documents"]))  # searchable from the committed batches
    opening = (root / first).read_text().split("\n\n")[1].split(". ")[0]
    found = rag(root, "search", opening)
    assert found.returncode == 0 and f" {first} " in found.stdout, found.stdout[:500] + found.stderr[-2000:]

    done = subprocess.run([*RAG, "ingest", "--quiet"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    cleared = ORPHANS_CLEARED.search(done.stdout)
    assert (int(cleared.group(1)) if cleared else 0) == uncommitted
    assert uncommitted <= COMMIT_CHUNKS + 10, f"{uncommitted} chunks of work lost: more than one batch"
    assert f"{LARGE_CORPUS - committed} added" in done.stdout and f"{committed} unchanged" in done.stdout, done.stdout
    final = snapshot_in_subprocess(root)
    check_consistent(final)
    assert len(final["documents"]) == LARGE_CORPUS
    print(
        f"\nkilled after {committed} of {LARGE_CORPUS} articles were committed, with {uncommitted} chunks "
        f"uncommitted (batches of {COMMIT_CHUNKS}); the next run added the other {LARGE_CORPUS - committed}"
    )
