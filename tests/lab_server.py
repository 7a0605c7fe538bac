"""A private JupyterLab server for the browser test: 127.0.0.1, a free port, a random token, its own dirs.

It serves whatever `root_dir` holds (the test copies the notebooks there, and autosave is off, so the
committed notebooks are never written), keeps JupyterLab's settings, workspaces and runtime files under
`workdir`, turns off everything that would reach the internet (news, update checks, the PyPI extension
manager), and on exit always stops the server and its kernels, killing it if it does not stop in time.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from vlsteps.serve.loadtest import free_port

# JupyterLab user settings for this server only: nothing saved behind the test's back, every cell in the
# DOM (the default windowing leaves far-away cells unrendered), no notification pop-ups over the page.
SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
}


class JupyterLab:
    """`with JupyterLab(root_dir, workdir) as lab: page.goto(lab.url("lab/tree/x.ipynb"))`."""

    def __init__(self, root_dir: Path, workdir: Path, start_timeout_s: float = 120, stop_timeout_s: float = 30):
        self.root_dir, self.workdir = Path(root_dir), Path(workdir)
        self.start_timeout_s, self.stop_timeout_s = start_timeout_s, stop_timeout_s
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.log_path = self.workdir / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, method: str, path: str, timeout_s: float = 5):
        """One REST call to the server (JSON in the reply, or None)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            body = reply.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> JupyterLab:
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings_dir = self.workdir / "settings"
        for plugin, values in SETTINGS.items():
            path = settings_dir / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        # The kernel inherits this environment, so it sees the test's VLSTEPS_* / HF_HUB_OFFLINE settings.
        env = dict(os.environ, JUPYTER_TOKEN=self.token, JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.workdir / "workspaces"),
                   JUPYTER_CONFIG_DIR=str(self.workdir / "config"), JUPYTER_DATA_DIR=str(self.workdir / "data"),
                   JUPYTER_RUNTIME_DIR=str(self.workdir / "runtime"))
        command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                   f"--ServerApp.root_dir={self.root_dir}", "--ServerApp.terminals_enabled=False",
                   "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                   "--LabApp.extension_manager=readonly"]
        if os.geteuid() == 0:   # CI containers run as root; jupyter refuses that unless told
            command.append("--allow-root")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("GET", "status", timeout_s=2)
                return
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"jupyter lab did not answer within {self.start_timeout_s:.0f} s:\n"
                                       f"{self.log_tail()}") from None
                time.sleep(0.5)

    def wait_for_kernel(self, path: str, timeout_s: float) -> None:
        """Until the notebook at `path` has a started, idle kernel that the browser is connected to."""
        deadline = time.monotonic() + timeout_s
        while True:
            kernels = [s["kernel"] for s in self.api("GET", "sessions") if s["path"] == path and s.get("kernel")]
            if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no idle kernel connected to {path} within {timeout_s:.0f} s "
                                   f"(kernels: {kernels}):\n{self.log_tail()}")
            time.sleep(0.5)

    def shutdown_kernels(self) -> None:
        for kernel in self.api("GET", "kernels"):
            self.api("DELETE", f"kernels/{kernel['id']}", timeout_s=self.stop_timeout_s)

    def stop(self) -> None:
        """Shut down the kernels and the server; SIGTERM, then SIGKILL, if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.shutdown_kernels()
            self.api("POST", "shutdown")
            self.proc.wait(self.stop_timeout_s)
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(self.stop_timeout_s)
