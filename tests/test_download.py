"""tools/download_models.sh and vlsteps.download against a fake Hub on 127.0.0.1 (no network needed)."""
from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import constants

from fake_hub import FakeHub, silent_server
from vlsteps import checkpoint, registry, sizes, transfer
from vlsteps import download as dl
from dataclasses import replace

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "download_models.sh"
WEIGHTS = os.urandom(300_000)
# What a typical transformers repo holds: weights in three formats, configs, and files we never want.
REPO_FILES = {"config.json": b'{"model_type": "vit"}', "preprocessor_config.json": b"{}",
              "model.safetensors": WEIGHTS, "pytorch_model.bin": b"pickle" * 1000,
              "tf_model.h5": b"h5" * 1000, "README.md": b"# card"}
WANTED = {"config.json", "preprocessor_config.json", "model.safetensors"}


def spec(repo_id: str) -> registry.Card:
    return replace(registry.get("vit"), key="tiny", repo_id=repo_id, download_gb=0.0003)


def fetched(folder: Path) -> set[str]:
    """Files that arrived, without the download's manifest."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and p.name != checkpoint.MANIFEST}


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A fake Hub, and huggingface_hub pointed away from the user's token and cache."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # conftest switches tests offline
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    repos = {"fake/tiny": dict(REPO_FILES), "fake/gated": dict(REPO_FILES),
             "fake/pickles-only": {"config.json": b"{}", "pytorch_model.bin": b"pickle"}}
    with FakeHub(repos, gated=("fake/gated",)) as fake:
        yield fake


def script_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """The environment of a fresh shell with the tests' venv activated: no token, no user cache, models under
    tmp_path."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE", "VLSTEPS_"))}
    clean.update({"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "0", "VIRTUAL_ENV": sys.prefix,
                  "VLSTEPS_MODELS_DIR": str(tmp_path / "models"), **env})
    return clean


def run_script(tmp_path: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=script_env(tmp_path, **env),
                          timeout=timeout)


def ends(call, hub: FakeHub, most_requests: int = 50, guard_s: float = 120):
    """Run `call` in a thread and return or raise what it does; fail as soon as it has asked the hub for more than
    `most_requests` files (a downloader that spins would otherwise hang the test run), or after `guard_s`."""
    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as err:  # handed to the test's thread
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    give_up = time.monotonic() + guard_s
    while thread.is_alive():
        assert len(hub.content_gets()) <= most_requests, f"still running after {len(hub.content_gets())} requests"
        assert time.monotonic() < give_up, f"still running after {guard_s:g} s"
        thread.join(0.05)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The transfer's waits between retries, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(transfer, "time", SimpleNamespace(monotonic=time.monotonic, sleep=waits.append))
    return waits


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# --- the shell script, end to end ---------------------------------------------------------------

def test_list_works_offline_and_shows_every_model_with_the_total(tmp_path):
    result = run_script(tmp_path, "--list", HF_HUB_OFFLINE="1", HF_ENDPOINT=closed_port_url())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for m in registry.CARDS.values():
        row = next(line for line in lines if line.split()[:2] == [m.key, m.repo_id])
        weights = f"{sizes.format_gb(sizes.weight_bytes(m.key, m.dtype))} ({m.dtype})"
        assert f"{m.download_gb:.2f} GB" in row and sizes.format_params(sizes.param_count(m.key)) in row
        assert weights in row
        assert all(nb in row for nb in m.notebooks)
        assert ("optional" in row) == m.optional
    total = sum(m.download_gb for m in registry.CARDS.values() if not m.optional)
    assert f"Total for `all`: {total:.1f} GB" in lines[-1]


def test_unknown_key_fails_with_one_line_naming_the_known_keys(tmp_path):
    result = run_script(tmp_path, "vit", "no-such-model", HF_ENDPOINT=closed_port_url())
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert "no-such-model" in line and all(key in line for key in registry.CARDS)
    assert result.stdout == ""  # failed before contacting anything


def test_unreachable_hub_fails_fast_with_one_line(tmp_path):
    url = closed_port_url()
    start = time.monotonic()
    result = run_script(tmp_path, "vit", HF_ENDPOINT=url, HF_HUB_ETAG_TIMEOUT="2", HF_HUB_DOWNLOAD_TIMEOUT="2")
    assert time.monotonic() - start < 20
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert registry.get("vit").repo_id in line and url in line and "connection" in line
    assert not (tmp_path / "models" / registry.get("vit").folder).exists()


def test_script_fetches_only_the_registry_files(tmp_path):
    vit = registry.get("vit")
    with FakeHub({vit.repo_id: dict(REPO_FILES)}) as fake:
        result = run_script(tmp_path, "vit", HF_ENDPOINT=fake.url)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "models" / vit.folder
    assert fetched(folder) == WANTED
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert {Path(path).name for _, path, _ in fake.content_gets()} == WANTED  # .bin/.h5 never requested
    assert "Total to fetch" in result.stdout and "Done: vit" in result.stdout


def test_hub_that_accepts_and_never_answers_fails_within_the_timeout(tmp_path):
    with silent_server() as url:
        start = time.monotonic()
        try:
            result = run_script(tmp_path, "vit", HF_ENDPOINT=url, VLSTEPS_TIMEOUT="2", timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("download_models.sh was still running after 30 s against a Hub that never answers")
        elapsed = time.monotonic() - start
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert url in line and "2 s" in line and "VLSTEPS_TIMEOUT" in line
    assert elapsed < 15
    assert not (tmp_path / "models" / registry.get("vit").folder).exists()


def test_deadline_flag_stops_a_slow_transfer_and_keeps_what_arrived(tmp_path):
    vit = registry.get("vit")
    with FakeHub({vit.repo_id: dict(REPO_FILES)}) as fake:
        fake.slow["model.safetensors"] = 0.5  # 300 kB in 64 KiB chunks: about 2.5 s
        start = time.monotonic()
        result = run_script(tmp_path, "vit", "--deadline", "1", HF_ENDPOINT=fake.url, timeout=30)
        elapsed = time.monotonic() - start
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "model.safetensors" in line and "--deadline" in line and "re-run" in line
    assert elapsed < 15
    folder = tmp_path / "models" / vit.folder
    assert not (folder / "model.safetensors").exists()
    assert not (folder / checkpoint.MANIFEST).exists()
    assert "--deadline" in run_script(tmp_path, "--help").stdout


# --- the Python core, against the same fake Hub -------------------------------------------------

def test_second_run_downloads_nothing(hub, tmp_path, capsys):
    dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    first = len(hub.content_gets())
    assert first == len(WANTED)
    dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    assert len(hub.content_gets()) == first
    assert capsys.readouterr().out.count("still to fetch: 0 B") == 1  # only the second plan


def test_files_already_there_are_checked_against_the_hub_once(hub, tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_bytes(REPO_FILES["config.json"])
    (folder / "model.safetensors").write_bytes(os.urandom(len(WEIGHTS)))  # the right size, other bytes
    dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert {Path(path).name for _, path, _ in hub.content_gets()} == {"model.safetensors", "preprocessor_config.json"}


def test_dropped_connection_resumes_where_it_stopped(hub, tmp_path):
    big = os.urandom(2_000_000)
    hub.repos["fake/big"] = {"config.json": b"{}", "model.safetensors": big}
    hub.cut_next_get["model.safetensors"] = 1_000_000
    dl.download([spec("fake/big")], tmp_path, endpoint=hub.url)
    assert (tmp_path / "big" / "model.safetensors").read_bytes() == big
    ranges = [rng for _, _, rng in hub.content_gets("model.safetensors")]
    assert ranges == [None, "bytes=1000000-"]  # asked only for the rest


def test_transfer_that_stalls_stops_with_one_line_and_keeps_the_partial(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("VLSTEPS_TIMEOUT", "1")
    hub.stall_next_get["model.safetensors"] = 100_000
    start = time.monotonic()
    with pytest.raises(dl.DownloadError) as err:
        dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "model.safetensors" in message and "1 s" in message and "re-run" in message and "\n" not in message
    assert not (tmp_path / "tiny" / "model.safetensors").exists()
    assert [p.stat().st_size for p in (tmp_path / "tiny").rglob("*")
            if p.is_file() and p.relative_to(tmp_path / "tiny").as_posix() not in WANTED] == [100_000]


def test_server_that_sends_no_bytes_is_retried_with_backoff_then_named(hub, tmp_path, sleeps):
    hub.empty.add("model.safetensors")  # 200, Content-Length 0: an old build spun with no pause, ~20,000 GETs
    with pytest.raises(dl.DownloadError) as err:
        ends(lambda: dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url), hub)
    message = str(err.value)
    assert len(hub.content_gets("model.safetensors")) == transfer.RETRIES
    assert sleeps == [1, 2, 4, 4]  # doubling, capped
    assert f"sends 0 of the {len(WEIGHTS)} bytes" in message and "model.safetensors" in message
    assert "will not help" in message and "HF_ENDPOINT" in message and "re-run the same" not in message
    assert "\n" not in message and not (tmp_path / "tiny" / "model.safetensors").exists()


def test_server_whose_file_is_shorter_than_the_listing_fails_with_one_clear_error(hub, tmp_path, sleeps):
    hub.short["model.safetensors"] = 100_000  # then answers 416 to `Range: bytes=100000-`
    with pytest.raises(dl.DownloadError) as err:
        ends(lambda: dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url), hub)
    message = str(err.value)
    ranges = [rng for _, _, rng in hub.content_gets("model.safetensors")]
    assert ranges == [None] + ["bytes=100000-"] * transfer.RETRIES
    assert f"sends 100000 of the {len(WEIGHTS)} bytes" in message and "model.safetensors" in message
    assert "will not help" in message and "re-run the same" not in message
    assert not (tmp_path / "tiny" / "model.safetensors").exists()
    assert not (tmp_path / "tiny" / checkpoint.MANIFEST).exists()


def test_server_that_ignores_range_restarts_the_file_once(hub, tmp_path, sleeps):
    hub.ignore_range.add("model.safetensors")
    hub.cut_next_get["model.safetensors"] = 100_000
    ends(lambda: dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url), hub)
    assert (tmp_path / "tiny" / "model.safetensors").read_bytes() == WEIGHTS
    assert [rng for _, _, rng in hub.content_gets("model.safetensors")] == [None, "bytes=100000-"]


@pytest.mark.parametrize("ending, hint", [("short", "re-running will not help"),
                                           ("dropped", "keeps dropping (RemoteProtocolError): re-running starts")])
def test_server_that_ignores_range_twice_fails_with_one_clear_error(hub, tmp_path, sleeps, ending, hint):
    hub.ignore_range.add("model.safetensors")
    if ending == "short":  # an old build looped ~800 times, then said "re-run to resume"
        hub.short["model.safetensors"] = 100_000
    else:
        hub.cut_every_get["model.safetensors"] = 100_000
    with pytest.raises(dl.DownloadError) as err:
        ends(lambda: dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url), hub)
    message = str(err.value)
    ranges = [rng for _, _, rng in hub.content_gets("model.safetensors")]
    assert ranges == [None, "bytes=100000-", "bytes=100000-"]  # the second 200 to a Range ends it
    assert "ignores Range" in message and f"100000 of the {len(WEIGHTS)} bytes" in message and hint in message
    assert "re-run the same" not in message


def test_connection_that_keeps_dropping_is_retried_with_backoff_and_resumable(hub, tmp_path, sleeps):
    hub.cut_every_get["model.safetensors"] = 0  # headers, then the connection closes
    with pytest.raises(dl.DownloadError) as err:
        ends(lambda: dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url), hub)
    assert len(hub.content_gets("model.safetensors")) == transfer.RETRIES and sleeps == [1, 2, 4, 4]
    assert "keeps dropping" in str(err.value) and "re-run the same command to resume" in str(err.value)


def test_retries_stop_at_the_deadline(hub, tmp_path, sleeps, monkeypatch):
    hub.empty.add("model.safetensors")
    monkeypatch.setattr(transfer, "BACKOFF_S", 1000.0)
    monkeypatch.setattr(transfer, "BACKOFF_MAX_S", 1000.0)
    with pytest.raises(dl.DownloadError) as err:  # the first wait would end past it
        ends(lambda: dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url, deadline_s=600), hub)
    assert "--deadline" in str(err.value) and f"0 of {len(WEIGHTS)} bytes" in str(err.value)
    assert len(hub.content_gets("model.safetensors")) == 1 and sleeps == []


def fail_writes_past(monkeypatch, limit: int, code: int) -> None:
    """Writes of the partial file fail with `code` once it would hold more than `limit` bytes, as a write does:
    an OSError that names no file."""
    write = transfer._Partial.write

    def failing(partial, chunk):
        if partial.size + len(chunk) > limit:
            raise OSError(code, os.strerror(code))
        write(partial, chunk)

    monkeypatch.setattr(transfer._Partial, "write", failing)


def test_full_disk_says_which_folder_how_much_is_needed_and_what_to_do(hub, tmp_path, monkeypatch):
    fail_writes_past(monkeypatch, 100_000, errno.ENOSPC)
    monkeypatch.setattr(dl, "free_bytes", lambda path: dl.MARGIN_BYTES + len(WEIGHTS) + 5000)
    with pytest.raises(dl.DownloadError) as err:
        dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    message = str(err.value)
    [partial] = (tmp_path / "tiny" / transfer.PARTIAL_DIR).iterdir()
    needed = len(WEIGHTS) - partial.stat().st_size
    assert 0 < partial.stat().st_size <= 100_000 and WEIGHTS.startswith(partial.read_bytes())  # kept for a re-run
    assert f"the disk holding {tmp_path / 'tiny'} is full" in message
    assert f"{dl.human(needed)} still to fetch, {dl.human(dl.MARGIN_BYTES + len(WEIGHTS) + 5000)} free" in message
    assert "--dest DIR" in message and "VLSTEPS_MODELS_DIR" in message and "None" not in message


def test_other_write_errors_say_what_failed_without_a_missing_file_name(hub, tmp_path, monkeypatch):
    fail_writes_past(monkeypatch, 100_000, errno.EIO)
    with pytest.raises(dl.DownloadError) as err:
        dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    assert str(err.value) == f"cannot write tiny: {os.strerror(errno.EIO)}"


def test_download_writes_a_manifest_last_that_makes_the_folder_complete(hub, tmp_path):
    tiny = spec("fake/tiny")
    dl.download([tiny], tmp_path, endpoint=hub.url)
    folder = tmp_path / "tiny"
    assert checkpoint.problems(folder, tiny) == []
    (folder / "model.safetensors").write_bytes(WEIGHTS[:1000])  # truncated later, e.g. by a full disk
    [problem] = checkpoint.problems(folder, tiny)
    assert "model.safetensors" in problem and str(len(WEIGHTS)) in problem


def test_damaged_transfer_is_discarded_not_put_in_place(hub, tmp_path):
    hub.corrupt.add("model.safetensors")  # the right size, but not the bytes whose sha256 the Hub lists
    with pytest.raises(dl.DownloadError) as err:
        dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    assert "model.safetensors" in str(err.value) and "sha256" in str(err.value) and "re-run" in str(err.value)
    assert fetched(tmp_path / "tiny") <= WANTED - {"model.safetensors"}  # nothing damaged in place or left behind
    hub.corrupt.clear()
    dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    assert (tmp_path / "tiny" / "model.safetensors").read_bytes() == WEIGHTS


def test_too_little_disk_space_fails_before_downloading(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "free_bytes", lambda path: dl.MARGIN_BYTES + len(WEIGHTS) // 2)
    with pytest.raises(dl.DownloadError) as err:
        dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    assert "not enough disk space" in str(err.value) and "\n" not in str(err.value)
    assert hub.content_gets() == []


def test_enough_disk_space_passes_the_check(hub, tmp_path, monkeypatch):
    needed = sum(len(REPO_FILES[name]) for name in WANTED)
    monkeypatch.setattr(dl, "free_bytes", lambda path: dl.MARGIN_BYTES + needed)
    dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    assert fetched(tmp_path / "tiny") == WANTED


def test_gated_repo_without_token_fails_before_any_download(hub, tmp_path):
    with pytest.raises(dl.DownloadError) as err:
        dl.download([spec("fake/tiny"), spec("fake/gated")], tmp_path, endpoint=hub.url)
    message = str(err.value)
    assert "fake/gated" in message and "hf auth login" in message and "HF_TOKEN" in message
    assert "\n" not in message
    assert hub.content_gets() == []  # not even the ungated model listed first


def test_gated_repo_refusing_the_token_says_how_to_get_access(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_accepted")  # passes the early check; the Hub answers 403
    with pytest.raises(dl.DownloadError) as err:
        dl.download([spec("fake/gated")], tmp_path, endpoint=hub.url)
    assert "is gated" in str(err.value) and "HF_TOKEN" in str(err.value)
    assert any(path.startswith("/fake/gated/resolve/") for _, path, _ in hub.log)


def test_missing_repo_is_named(hub, tmp_path):
    with pytest.raises(dl.DownloadError, match="fake/missing was not found"):
        dl.download([spec("fake/missing")], tmp_path, endpoint=hub.url)


def test_repo_without_safetensors_is_refused(hub, tmp_path):
    with pytest.raises(dl.DownloadError, match="no safetensors weights"):
        dl.download([spec("fake/pickles-only")], tmp_path, endpoint=hub.url)
    assert hub.content_gets() == [] and not (tmp_path / "pickles-only").exists()


def test_offline_mode_is_reported(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(dl.DownloadError, match="HF_HUB_OFFLINE"):
        dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    assert hub.log == []


def test_all_means_every_non_optional_model_once():
    keys = [m.key for m in dl.select(["vit", "all", "vit"])]
    assert len(keys) == len(set(keys))
    assert set(keys) == {m.key for m in registry.CARDS.values() if not m.optional}
    optional = next(m.key for m in registry.CARDS.values() if m.optional)
    assert [m.key for m in dl.select([optional, "all"])][0] == optional


def test_script_runs_in_the_active_venv_before_the_projects_own(tmp_path):
    """A user who activated a venv (or check_python.sh's, which has no .venv beside it) gets that venv's Python."""
    fake = tmp_path / "venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho "active venv: $*"\n')
    fake.chmod(0o755)
    result = run_script(tmp_path, "--list", VIRTUAL_ENV=str(tmp_path / "venv"))
    assert result.stdout.strip() == "active venv: -m vlsteps.download --list"


def test_all_says_what_it_leaves_out_before_downloading(monkeypatch, capsys, tmp_path):
    """`all` skips the optional 31.8 GB checkpoint: the command says so, and how to get it."""
    fetched = []
    monkeypatch.setattr(dl, "download", lambda specs, dest, **kw: fetched.extend(s.key for s in specs))
    assert dl.main(["all", "--dest", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    optional = [m for m in registry.CARDS.values() if m.optional]
    assert optional and all(m.key in out and f"{m.download_gb:g} GB" in out for m in optional)
    assert not {m.key for m in optional} & set(fetched)
    assert dl.left_out_of_all(["vit"]) is None
    assert dl.left_out_of_all(["all", *(m.key for m in optional)]) is None
