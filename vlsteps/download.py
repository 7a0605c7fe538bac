"""Fetch the checkpoints named in `vlsteps.registry` from the Hugging Face Hub.

`scripts/download_models.sh` runs this module. It is a thin layer over `huggingface_hub.snapshot_download`
that adds what a tutorial reader needs: only the registry's files (safetensors weights and configs, never
pickles or code), sizes and a disk-space check before anything is written, and one readable line instead
of a traceback when something goes wrong. Re-running resumes an interrupted download and skips
finished files.

    python -m vlsteps.download vit clip --dest /data/models
    python -m vlsteps.download all
    python -m vlsteps.download --list
"""
from __future__ import annotations

import argparse
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token, snapshot_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import filter_repo_objects

from . import registry
from .models import models_dir
from .registry import IGNORED_FILES, ModelSpec

# Headroom above the bytes to fetch: the filesystem must not end up completely full.
MARGIN_BYTES = 10**9


class DownloadError(Exception):
    """A failure the user can act on; its message is the one line the CLI prints."""


@dataclass(frozen=True)
class Plan:
    spec: ModelSpec
    revision: str      # the commit to fetch, so the sizes shown are the sizes fetched
    hub_bytes: int     # size of the selected files on the Hub
    missing_bytes: int  # what is not on disk yet


def human(n_bytes: float) -> str:
    """Sizes as the Hub shows them (decimal units), so a 300 kB config does not read as 0.00 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes:.0f} B"


def select(keys: list[str]) -> list[ModelSpec]:
    """Registry entries for `keys`, in order, without repeats; `all` means every non-optional one."""
    chosen: dict[str, ModelSpec] = {}
    for key in keys:
        if key == "all":
            chosen.update((m.key, m) for m in registry.MODELS.values() if not m.optional)
            continue
        try:
            chosen[key] = registry.get(key)
        except KeyError as err:
            raise DownloadError(err.args[0]) from None
    return list(chosen.values())


def format_table() -> str:
    """The registry as a table (offline), with the size of `all`."""
    models = list(registry.MODELS.values())
    key_w = max(len(m.key) for m in models)
    repo_w = max(len(m.repo_id) for m in models)
    lines = [f"{'key':<{key_w}}  {'repo':<{repo_w}}  {'download':>9}  {'GPU mem':>8}  notebooks"]
    for m in models:
        extra = "  (optional: not in `all`)" if m.optional else ""
        lines.append(f"{m.key:<{key_w}}  {m.repo_id:<{repo_w}}  {m.download_gb:>6.2f} GB  "
                     f"{m.gpu_gb:>5.1f} GB  {', '.join(m.notebooks)}{extra}")
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


def download(specs: list[ModelSpec], dest: Path, endpoint: str | None = None) -> None:
    """Fetch `specs` into `dest/<folder>`; raises DownloadError with a one-line reason.

    Every repo is looked up before the first byte is written, so a typo, a gated repo or a missing
    network fails fast instead of after an hour of downloads. `endpoint` is a Hub mirror (default:
    HF_ENDPOINT or huggingface.co).
    """
    if constants.is_offline_mode():
        raise DownloadError("HF_HUB_OFFLINE is set: unset it to download models")
    dest = Path(dest)
    endpoint = endpoint or constants.ENDPOINT
    api = HfApi(endpoint=endpoint)
    plans = []
    for spec in specs:
        with _hub_errors(spec, endpoint):
            plans.append(_plan(spec, dest, api))

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

    for p in plans:
        with _hub_errors(p.spec, endpoint):
            snapshot_download(p.spec.repo_id, revision=p.revision, allow_patterns=list(p.spec.files),
                              ignore_patterns=list(IGNORED_FILES), local_dir=dest / p.spec.folder,
                              endpoint=endpoint)
    print(f"Done: {', '.join(p.spec.key for p in plans)} in {dest}")


def _plan(spec: ModelSpec, dest: Path, api: HfApi) -> Plan:
    """Ask the Hub which registry files exist and how much of them is not on disk yet."""
    # The registry may pin a revision (e.g. a safetensors conversion PR) where main holds only pickles.
    revision = spec.revision
    info = api.model_info(spec.repo_id, revision=revision, files_metadata=True)
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    names = list(filter_repo_objects(sizes, allow_patterns=list(spec.files), ignore_patterns=list(IGNORED_FILES)))
    if not any(name.endswith(".safetensors") for name in names):
        raise DownloadError(f"{spec.repo_id} has no safetensors weights at revision {revision or 'main'} (pickled "
                            f"weights are never fetched): pin a safetensors revision in vlsteps/registry.py")
    if info.gated and get_token() is None:
        raise DownloadError(_gated_message(spec))
    folder = dest / spec.folder
    missing = sum(sizes[n] for n in names
                  if not (folder / n).is_file() or (folder / n).stat().st_size != sizes[n])
    return Plan(spec, info.sha, sum(sizes[n] for n in names), missing)


def _gated_message(spec: ModelSpec) -> str:
    return (f"{spec.repo_id} is gated: accept its terms on https://huggingface.co/{spec.repo_id}, then run "
            f"`hf auth login` or set HF_TOKEN")


@contextmanager
def _hub_errors(spec: ModelSpec, endpoint: str):
    """Turn what a Hub call for `spec` raises into a one-line DownloadError."""
    try:
        yield
    except DownloadError:
        raise
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
        raise DownloadError(f"cannot write {spec.key}: {err.strerror} ({err.filename})") from None
    except Exception as err:  # the HTTP client's connection and timeout errors, whichever client it is
        raise DownloadError(_network_message(spec, endpoint, err)) from None


def _network_message(spec: ModelSpec, endpoint: str, err: Exception) -> str:
    detail = " ".join(str(err).split())[:160]
    return (f"cannot download {spec.repo_id} from {endpoint} ({type(err).__name__}: {detail}); "
            f"check your connection and re-run: finished files are kept")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="download_models.sh",
        description="Download the checkpoints the notebooks use (safetensors only), resumably.",
        epilog=f"Known keys: {', '.join(registry.MODELS)}. `all` = every key not marked optional.")
    parser.add_argument("keys", nargs="*", metavar="KEY", help="registry keys, or `all`")
    parser.add_argument("--list", action="store_true", help="print the model table and exit (offline)")
    parser.add_argument("--dest", type=Path, help="target folder (default: VLSTEPS_MODELS_DIR or models/)")
    args = parser.parse_args(argv)
    if args.list:
        print(format_table())
        return 0
    if not args.keys:
        parser.print_help()
        return 2
    try:
        download(select(args.keys), (args.dest or models_dir()).expanduser())
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
