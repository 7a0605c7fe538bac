"""Downloads resume across runs: Ctrl-C keeps the partial file, the next run asks only for the rest."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_download import REPO_FILES, SCRIPT, WANTED, WEIGHTS, run_script, script_env, spec
from test_download import hub  # noqa: F401 -- the fake Hub fixture

from fake_hub import FakeHub
from vlsteps import checkpoint, registry
from vlsteps import download as dl

VIT = registry.get("vit")
BIG = os.urandom(3_000_000)
FILES = {"config.json": b'{"model_type": "vit"}', "preprocessor_config.json": b"{}", "model.safetensors": BIG}


def leftovers(folder: Path) -> list[Path]:
    """Everything under folder except the finished files and the manifest: partial files and their folders."""
    finished = {folder / name for name in FILES} | {folder / checkpoint.MANIFEST}
    return sorted(p for p in folder.rglob("*") if p not in finished)


def test_interrupted_download_resumes_in_the_next_run_and_a_third_run_fetches_nothing(tmp_path):
    folder = tmp_path / "models" / VIT.folder
    with FakeHub({VIT.repo_id: dict(FILES)}) as fake:
        # 3 MB in 64 KiB chunks: about 23 s, so Ctrl-C lands mid-transfer even on a loaded machine (at 2.5 s it
        # once finished first, under load, and at 10 s once more, beside a full test run and two trainings); the
        # interrupt comes after the first 300 kB, so the test does not wait for the rest
        fake.slow["model.safetensors"] = 0.5
        # Ctrl-C as a terminal sends it, whoever started pytest: a shell script's background job (`.ci/run` runs the
        # Python checks side by side) inherits SIGINT ignored, and then Python never raises KeyboardInterrupt.
        proc = subprocess.Popen([str(SCRIPT), "vit"], env=script_env(tmp_path, HF_ENDPOINT=fake.url),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            give_up = time.monotonic() + 30
            while not any(p.is_file() and p.stat().st_size >= 300_000 for p in leftovers(folder)):
                assert proc.poll() is None, "finished or failed before any partial weights were on disk"
                assert time.monotonic() < give_up, "no partial weights appeared within 30 s"
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            sent = time.monotonic()
            _, stderr = proc.communicate(timeout=10)
            stopped_after = time.monotonic() - sent
        finally:
            proc.kill()
        assert proc.returncode == 130, stderr
        assert stopped_after < 2, f"took {stopped_after:.1f} s to stop after Ctrl-C"
        assert stderr.splitlines() == ["error: interrupted; re-run the same command to resume"]
        [partial] = [p for p in leftovers(folder) if p.is_file()]
        kept = partial.stat().st_size
        assert 300_000 <= kept < len(BIG)
        assert BIG.startswith(partial.read_bytes())
        assert not (folder / "model.safetensors").exists()

        fake.slow.clear()
        before = len(fake.log)
        second = run_script(tmp_path, "vit", HF_ENDPOINT=fake.url, timeout=60)
        assert second.returncode == 0, second.stderr
        assert [rng for _, _, rng in fake.content_gets("model.safetensors")[-1:]] == [f"bytes={kept}-"]
        assert len(fake.content_gets("model.safetensors")) == 2  # one request per run: no retry from byte 0
        assert (folder / "model.safetensors").read_bytes() == BIG
        assert leftovers(folder) == []

        before = len(fake.log)
        third = run_script(tmp_path, "vit", HF_ENDPOINT=fake.url, timeout=60)
        assert third.returncode == 0, third.stderr
        assert [entry for entry in fake.log[before:] if "/resolve/" in entry[1]] == []  # no file requests at all
        assert "still to fetch: 0 B" in third.stdout


def test_partial_bytes_count_as_fetched_in_the_plan_and_the_disk_check(hub, tmp_path, monkeypatch, capsys):
    hub.stall_next_get["model.safetensors"] = 200_000
    monkeypatch.setenv("VLSTEPS_TIMEOUT", "1")
    with pytest.raises(dl.DownloadError, match="no data"):  # 200 kB of the weights stay behind
        dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    folder = tmp_path / "tiny"
    rest = sum(len(REPO_FILES[name]) for name in WANTED if not (folder / name).exists()) - 200_000
    monkeypatch.setattr(dl, "free_bytes", lambda path: dl.MARGIN_BYTES + rest)  # too little for a fresh start
    capsys.readouterr()
    dl.download([spec("fake/tiny")], tmp_path, endpoint=hub.url)
    assert f"still to fetch: {dl.human(rest)}" in capsys.readouterr().out
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert hub.content_gets("model.safetensors")[-1][2] == "bytes=200000-"
