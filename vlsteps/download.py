"""Fetch the checkpoints named in `vlsteps.registry` from the Hugging Face Hub.

`tools/download_models.sh` runs this module. It adds what a tutorial reader needs: only the registry's files
(safetensors weights and configs, never pickles or code), sizes and a disk-space check before anything is
written, one readable line instead of a traceback when something goes wrong, and downloads that survive being
stopped. Each file is fetched into <folder>/.partial/ first (`vlsteps.transfer`): Ctrl-C stops at once (exit
130), and re-running the same command resumes every file where it stopped and skips finished ones. A folder
counts as downloaded once its manifest is written, last (`vlsteps.checkpoint`).

Deadlines: asking the Hub for a repo's files takes at most VLSTEPS_TIMEOUT seconds in all (default 30; --timeout
overrides it), and a file transfer that receives no byte for that long stops. --deadline SECONDS (default 24 h)
caps all the transfers of one run. Either way what arrived is kept for the next run.

    python -m vlsteps.download vit clip --dest /data/models
    python -m vlsteps.download all --deadline 3600
    python -m vlsteps.download --list
"""
from __future__ import annotations

import argparse
import errno
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token, hf_hub_url
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import filter_repo_objects

from . import checkpoint, registry, transfer
from .paths import models_dir
from .net import ENV_TIMEOUT, timeout_s
from .cards.card import IGNORED_FILES, Card
from .transfer import RemoteFile, TransferError

# Headroom above the bytes to fetch: the filesystem must not end up completely full.
MARGIN_BYTES = 10**9
DEADLINE_S = 24 * 3600  # for all the transfers of one run; re-running continues


class DownloadError(Exception):
    """A failure the user can act on; its message is the one line the CLI prints."""


@dataclass(frozen=True)
class Plan:
    spec: Card
    revision: str      # the commit to fetch, so the sizes shown are the sizes fetched
    files: tuple[RemoteFile, ...]  # the selected files, with the Hub's sizes and hashes
    missing_bytes: int  # what is not on disk yet (bytes of partial files count as there)

    @property
    def hub_bytes(self) -> int:
        return sum(f.size for f in self.files)


def human(n_bytes: float) -> str:
    """Sizes as the Hub shows them (decimal units), so a 300 kB config does not read as 0.00 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes:.0f} B"


def left_out_of_all(keys: list[str]) -> str | None:
    """What `all` does not fetch, said before a download starts (a 31.8 GB checkpoint must not go missing silently)."""
    optional = [m for m in registry.CARDS.values() if m.optional and m.key not in keys]
    if "all" not in keys or not optional:
        return None
    names = ", ".join(f"{m.key} ({m.download_gb:g} GB)" for m in optional)
    return (f"note: `all` leaves out the optional {names}; to fetch it too: tools/download_models.sh "
            f"{' '.join(m.key for m in optional)}")


def select(keys: list[str]) -> list[Card]:
    """Registry entries for `keys`, in order, without repeats; `all` means every non-optional one."""
    chosen: dict[str, Card] = {}
    for key in keys:
        if key == "all":
            chosen.update((m.key, m) for m in registry.CARDS.values() if not m.optional)
            continue
        try:
            chosen[key] = registry.get(key)
        except KeyError as err:
            raise DownloadError(err.args[0]) from None
    return list(chosen.values())


def format_table() -> str:
    """The registry as a table (offline), with the size of `all`: parameters and weight memory computed from the
    real architectures (vlsteps.sizes), the download size as the Hub lists it."""
    from . import architectures, sizes   # sizes' formatting only: the numbers are architectures.computed's
    models = list(registry.CARDS.values())
    key_w = max(len(m.key) for m in models)
    repo_w = max(len(m.repo_id) for m in models)
    lines = [f"{'key':<{key_w}}  {'repo':<{repo_w}}  {'download':>9}  {'params':>7}  "
             f"{'weights (GPU dtype, computed)':<29}  notebooks"]
    for m in models:
        extra = "  (optional: not in `all`)" if m.optional else ""
        real = architectures.computed(m.key)
        weights = f"{sizes.format_gb(real['weight_bytes'][m.dtype])} ({m.dtype})"
        lines.append(f"{m.key:<{key_w}}  {m.repo_id:<{repo_w}}  {m.download_gb:>6.2f} GB  "
                     f"{sizes.format_params(real['params']):>7}  {weights:<29}  "
                     f"{', '.join(m.notebooks)}{extra}")
    total = sum(m.download_gb for m in models if not m.optional)
    optional = sum(m.download_gb for m in models if m.optional)
    lines.append(f"Total for `all`: {total:.1f} GB (optional models add {optional:.1f} GB)")
    return "\n".join(lines)


def free_bytes(path: Path) -> int:
    """Free space on the filesystem that will hold `path` (which may not exist yet)."""
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def download(specs: list[Card], dest: Path, endpoint: str | None = None, *, timeout: float | None = None,
             deadline_s: float = DEADLINE_S) -> None:
    """Fetch `specs` into `dest/<folder>`; raises DownloadError with a one-line reason.

    Every repo is looked up before the first byte is written, so a typo, a gated repo or a missing
    network fails fast instead of after an hour of downloads. `endpoint` is a Hub mirror (default:
    HF_ENDPOINT or huggingface.co); `timeout` overrides VLSTEPS_TIMEOUT; `deadline_s` caps all transfers.
    """
    if constants.is_offline_mode():
        raise DownloadError("HF_HUB_OFFLINE is set: unset it to download models")
    try:
        timeout = timeout_s(timeout)
    except ValueError as err:
        raise DownloadError(str(err)) from None
    dest = Path(dest)
    endpoint = endpoint or constants.ENDPOINT
    api = HfApi(endpoint=endpoint)
    plans = []
    for spec in specs:
        with _hub_errors(spec, endpoint, timeout):
            plans.append(_plan(spec, dest, api, timeout))

    print(f"Models for {dest} (safetensors weights and configs only):")
    for p in plans:
        print(f"  {p.spec.key:<20} {p.spec.repo_id:<40} {human(p.hub_bytes):>9}   "
              f"still to fetch: {human(p.missing_bytes)}")
    needed = sum(p.missing_bytes for p in plans)
    free = free_bytes(dest)
    print(f"Total to fetch: {human(needed)} ({human(free)} free)")
    if needed and free < needed + MARGIN_BYTES:
        raise DownloadError(f"not enough disk space in {dest}: {human(needed)} to fetch + {human(MARGIN_BYTES)} "
                            f"headroom, but only {human(free)} free (free some space or pass --dest DIR)")

    stop_at = time.monotonic() + deadline_s
    for i, p in enumerate(plans):
        with _hub_errors(p.spec, endpoint, timeout), _disk_full(dest, p.spec.folder, plans[i:]):
            _fetch(p, dest / p.spec.folder, endpoint, timeout, stop_at)
    print(f"Done: {', '.join(p.spec.key for p in plans)} in {dest}")


def _plan(spec: Card, dest: Path, api: HfApi, timeout: float) -> Plan:
    """Ask the Hub which registry files exist and how much of them is not on disk yet."""
    # The registry may pin a revision (e.g. a safetensors conversion PR) where main holds only pickles.
    revision = spec.revision
    with _total_deadline(timeout):
        info = api.model_info(spec.repo_id, revision=revision, files_metadata=True, timeout=timeout)
    siblings = {s.rfilename: s for s in info.siblings or []}
    names = filter_repo_objects(siblings, allow_patterns=list(spec.files), ignore_patterns=list(IGNORED_FILES))
    files = tuple(_remote(siblings[name]) for name in names)
    if not any(f.name.endswith(".safetensors") for f in files):
        raise DownloadError(f"{spec.repo_id} has no safetensors weights at revision {revision or 'main'} (pickled "
                            f"weights are never fetched): pin a safetensors revision in vlsteps/registry.py")
    if info.gated and get_token() is None:
        raise DownloadError(_gated_message(spec))
    return Plan(spec, info.sha, files, _missing(dest / spec.folder, files))


def _remote(sibling) -> RemoteFile:
    """A file of `model_info(files_metadata=True)`: LFS files carry the sha256 of their content, others a git id."""
    lfs = sibling.lfs
    return RemoteFile(sibling.rfilename, sibling.size or 0, sha256=lfs.sha256 if lfs else None,
                      git_oid=None if lfs else sibling.blob_id)


def _missing(folder: Path, files) -> int:
    """Bytes of `files` not on disk yet (bytes of partial files count as there)."""
    return sum(f.size - transfer.partial_size(folder, f) for f in files if not _finished(folder, f))


def _finished(folder: Path, remote: RemoteFile) -> bool:
    path = folder / remote.name
    return path.is_file() and path.stat().st_size == remote.size


def _fetch(plan: Plan, folder: Path, endpoint: str, timeout: float, stop_at: float) -> None:
    """The plan's missing files one by one, in this thread; then the manifest, which marks the folder complete.

    A file of the right size that no manifest vouches for (put there by hand, or by an older vlsteps) is checked
    against the Hub's hash once, so the manifest never vouches for bytes nobody checked.
    """
    vouched = checkpoint.recorded(folder) or {}
    for remote in plan.files:
        if _finished(folder, remote):
            if vouched.get(remote.name) == remote.record:
                continue
            print(f"  {plan.spec.key}: checking {remote.name} ({human(remote.size)}) against the Hub", flush=True)
            if transfer.holds(folder / remote.name, remote):
                continue
        done = transfer.partial_size(folder, remote)
        print(f"  {plan.spec.key}: {remote.name} ({human(remote.size)}"
              f"{f', resuming at {human(done)}' if done else ''})", flush=True)
        url = hf_hub_url(plan.spec.repo_id, remote.name, revision=plan.revision, endpoint=endpoint)
        transfer.fetch(url, folder, remote, stall_s=timeout, stop_at=stop_at)
    shutil.rmtree(folder / transfer.PARTIAL_DIR, ignore_errors=True)  # partial files of names no longer listed
    checkpoint.write_manifest(folder, plan.spec, plan.revision, {f.name: f.record for f in plan.files})


class _Expired(Exception):
    """A Hub call outlived its total deadline."""


@contextmanager
def _total_deadline(seconds: float):
    """Stop the Hub call inside after `seconds` in all, however slowly the server trickles: the HTTP client's
    own timeout bounds each read only. Needs SIGALRM, i.e. POSIX and the main thread; elsewhere the
    per-read timeout is the bound."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _disk_full(dest: Path, folder: str, plans: list[Plan]):
    """Turn a full disk into what to do about it: the write error alone reads "No space left on device (None)"."""
    try:
        yield
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        needed = sum(_missing(dest / p.spec.folder, p.files) for p in plans)
        raise DownloadError(f"the disk holding {dest / folder} is full: {human(needed)} still to fetch, "
                            f"{human(free_bytes(dest))} free; free some space and re-run the same command (what "
                            f"arrived is kept), or pass --dest DIR (or set VLSTEPS_MODELS_DIR) for a disk with room"
                            ) from None


def _gated_message(spec: Card) -> str:
    return (f"{spec.repo_id} is gated: accept its terms on https://huggingface.co/{spec.repo_id}, then run "
            f"`hf auth login` or set HF_TOKEN")


@contextmanager
def _hub_errors(spec: Card, endpoint: str, timeout: float):
    """Turn what a Hub call for `spec` raises into a one-line DownloadError."""
    try:
        yield
    except DownloadError:
        raise
    except TransferError as err:
        raise DownloadError(f"{spec.key}: {err}") from None
    except _Expired:
        raise DownloadError(_timeout_message(spec, endpoint, timeout)) from None
    except GatedRepoError:
        raise DownloadError(_gated_message(spec)) from None
    except RepositoryNotFoundError:
        raise DownloadError(f"{spec.repo_id} was not found on {endpoint} (check repo_id in vlsteps/registry.py; "
                            f"a private repo needs `hf auth login` or HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise DownloadError(f"{spec.repo_id}: the registry's revision does not exist on the Hub "
                            f"(check vlsteps/registry.py)") from None
    except HfHubHTTPError as err:
        raise DownloadError(f"{spec.repo_id}: the Hub answered HTTP {err.response.status_code}; "
                            f"try again later (finished files are kept)") from None
    except OSError as err:
        if err.errno is None:  # huggingface_hub's own "could not reach the Hub" errors
            raise DownloadError(_network_message(spec, endpoint, err)) from None
        where = f" ({err.filename})" if err.filename else ""  # a failed write names no file
        raise DownloadError(f"cannot write {spec.key}: {err.strerror}{where}") from None
    except Exception as err:  # the HTTP client's connection and timeout errors, whichever client it is
        if transfer.is_timeout(err):
            raise DownloadError(_timeout_message(spec, endpoint, timeout)) from None
        raise DownloadError(_network_message(spec, endpoint, err)) from None


def _timeout_message(spec: Card, endpoint: str, timeout: float) -> str:
    return (f"cannot download {spec.repo_id}: {endpoint} did not answer within {timeout:g} s; check your "
            f"connection and re-run (--timeout or {ENV_TIMEOUT} waits longer)")


def _network_message(spec: Card, endpoint: str, err: Exception) -> str:
    detail = " ".join(str(err).split())[:160]
    return (f"cannot download {spec.repo_id} from {endpoint} ({type(err).__name__}: {detail}); "
            f"check your connection and re-run: finished files are kept")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="download_models.sh",
        description="Download the checkpoints the notebooks use (safetensors only), resumably.",
        epilog=f"Known keys: {', '.join(registry.CARDS)}. `all` = every key not marked optional.")
    parser.add_argument("keys", nargs="*", metavar="KEY", help="registry keys, or `all`")
    parser.add_argument("--list", action="store_true", help="print the model table and exit (offline)")
    parser.add_argument("--dest", type=Path, help="target folder (default: VLSTEPS_MODELS_DIR or models/)")
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                        help=f"for each Hub call, and the longest a transfer may go without a byte "
                             f"(default: {ENV_TIMEOUT} or 30)")
    parser.add_argument("--deadline", type=_seconds, default=DEADLINE_S, metavar="SECONDS",
                        help="stop all transfers after this long; re-running resumes (default: 24 h)")
    args = parser.parse_args(argv)
    if args.list:
        print(format_table())
        return 0
    if not args.keys:
        parser.print_help()
        return 2
    note = left_out_of_all(args.keys)
    if note:
        print(note, flush=True)
    try:
        download(select(args.keys), (args.dest or models_dir()).expanduser(), timeout=args.timeout,
                 deadline_s=args.deadline)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


def _seconds(text: str) -> float:
    try:
        return timeout_s(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds") from None


if __name__ == "__main__":
    sys.exit(main())
