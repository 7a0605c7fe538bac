"""A saved LoRA adapter loaded back onto its base model and merged into its weights: one home for the fine-tuning
notebook and the service (`--adapter KEY=PATH`), so a fine-tuned model costs nothing extra per call. Whatever is
wrong with an adapter folder is said in one message that says what to do, before the model answers anything."""
from __future__ import annotations

import json
from pathlib import Path

from .. import registry

CONFIG, WEIGHTS, PICKLED = "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"
SAVE = "PeftModel.save_pretrained(folder) writes one"


class AdapterError(ValueError):
    """An adapter folder that cannot be merged into the model it was given for."""


def check(path, key: str) -> Path:
    """The LoRA adapter folder `path` for registry model `key`, checked without loading a model: the two files
    `PeftModel.save_pretrained` writes (safetensors weights only: a pickle can run code when loaded), and a base
    model that is key's (peft records it as `base_model_name_or_path`, a folder or a Hub id named like key's repo)."""
    spec = registry.get(key)
    folder = Path(path).expanduser().absolute()
    where = f"The adapter for '{key}' at {folder}"
    if not folder.is_dir():
        raise AdapterError(f"{where} {'is not a folder' if folder.exists() else 'does not exist'}: give the "
                           f"folder the adapter was saved to ({SAVE}).")
    if not (folder / CONFIG).is_file():
        raise AdapterError(f"{where} holds no {CONFIG}, so it is no peft adapter folder: give the folder the "
                           f"adapter was saved to ({SAVE}).")
    if not (folder / WEIGHTS).is_file():
        if (folder / PICKLED).is_file():
            raise AdapterError(f"{where} holds its weights as a pickle ({PICKLED}), which is never loaded here (a "
                               f"pickle can run code): save it again with PeftModel.save_pretrained(folder), which "
                               f"writes {WEIGHTS}.")
        raise AdapterError(f"{where} holds no {WEIGHTS}: save the adapter again ({SAVE}).")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise AdapterError(f"{where}: {CONFIG} is not readable JSON ({e}); save the adapter again ({SAVE}).") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        kind = config.get("peft_type") if isinstance(config, dict) else None
        raise AdapterError(f"{where} is no LoRA adapter (peft_type {kind!r}), and only LoRA adapters merge into the "
                           f"model here: train a LoRA one (vlsteps.finetune.adapters.lora_config).")
    base = config.get("base_model_name_or_path") or ""
    if base and base.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] != spec.folder:
        raise AdapterError(f"{where} was trained on {base!r}, not on '{key}' ({spec.repo_id}): give it to the model "
                           f"it was trained on, or train one on '{key}'.")
    return folder


def merge(model, path, key: str):
    """`model` (registry model key's, as loaded) with the LoRA adapter saved at `path` merged into its weights
    (`PeftModel.from_pretrained(model, path).merge_and_unload()`); `model` itself is changed. An adapter whose
    modules or shapes are not the model's (made for another model, or for key's stand-in and not the real one) is
    refused, not half-applied: peft itself only warns when some of the adapter's weights found no place."""
    folder = check(path, key)
    import warnings

    import torch
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors import SafetensorError, safe_open
    misfit = f"The adapter at {folder} does not fit '{key}' ({getattr(model, 'name_or_path', '') or 'as loaded'})"
    advice = f"it was made for another model (a stand-in's does not fit the real checkpoint): train one on '{key}'."
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Found missing adapter keys")     # peft's: refused below instead
            adapted = PeftModel.from_pretrained(model, str(folder))
        with safe_open(str(folder / WEIGHTS), "pt") as f:
            saved = set(f.keys())
    except torch.OutOfMemoryError:
        raise
    except (ValueError, RuntimeError, KeyError, OSError, SafetensorError) as e:
        reason = " ".join(str(e).split())[:300].rstrip(".") or type(e).__name__     # peft's, on one line
        raise AdapterError(f"{misfit}: {reason}; {advice}") from None
    # save_embedding_layers=False: "auto" asks the Hub whether the base's config exists
    placed = set(get_peft_model_state_dict(adapted, save_embedding_layers=False))
    if saved != placed:
        unplaced = sorted(saved - placed) or sorted(placed - saved)
        raise AdapterError(f"{misfit}: {len(saved - placed)} of its weights name no module of this model and "
                           f"{len(placed - saved)} of its modules have no weights (such as {unplaced[0]}); {advice}")
    return adapted.merge_and_unload()
