"""The fine-tuning loop the notebook and `python -m vlsteps.finetune` share: adapters on a frozen base, AdamW on the
adapters only, a fixed order of examples, and a checkpoint of the adapter and the optimizer every few steps, so a
run stopped at any moment continues where it was (the same batches, the same result)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..captioner.runs import load_checkpoint, save_checkpoint
from ..files import atomic_write
from .adapters import lora_config, new_token_ids

CHECKPOINT, SETTINGS, ADAPTER = "last.safetensors", "settings.json", "adapter"


def quiet_peft() -> None:
    """peft 0.21 reads transformers' `is_gradient_checkpointing`, which transformers 5.23 renamed: a FutureWarning
    that says nothing a learner can act on. (bitsandbytes' import warning is silenced by `import vlsteps`.)"""
    import warnings
    warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)


def adapt(model, r: int = 8, qformer: bool = False, new_words=(), tokenizer=None):
    """`model` (16-bit, or QLoRA's 4-bit base) wrapped by peft with the LoRA adapter of `adapters.lora_config` (and
    the rows of `new_words`), every other weight frozen. Gradient checkpointing (recompute each layer's activations
    in the backward pass) is on where a GPU runs, where memory is what runs out. The unquantized parts of a 4-bit base
    stay 16-bit, as vlsteps.finetune.memory counts them (peft's prepare_model_for_kbit_training would make them
    float32)."""
    import torch
    quiet_peft()
    from peft import get_peft_model
    if torch.cuda.is_available():
        # transformers 5.23 renamed it (the old name warns); 5.20, the last for Python 3.10, has only the old one
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    ids = new_token_ids(tokenizer, new_words) if new_words else []
    return get_peft_model(model, lora_config(r, qformer, ids))


def order(n: int, steps: int, batch: int, seed: int = 0) -> np.ndarray:
    """Which examples each step trains on: a fresh shuffle every pass over the data, fixed by the seed."""
    passes = -(-steps * batch // n)
    return np.concatenate([np.random.default_rng([seed, p]).permutation(n) for p in range(passes)])


def fit(model, processor, make_batch, examples, steps: int, batch: int = 16, lr: float = 3e-3,
        folder=None, save_every: int = 25, seed: int = 0, progress: bool = True) -> list[float]:
    """Train the adapter for `steps` steps of `batch` examples; the loss of every step. With `folder`, the adapter and
    the optimizer are saved there every `save_every` steps and at the end, and a run with the same settings continues
    from the last save (a finished run just returns its losses)."""
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from huggingface_hub.utils import tqdm   # off where HF_HUB_DISABLE_PROGRESS_BARS is set (copies made to read)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    settings = {"steps": steps, "batch": batch, "lr": lr, "seed": seed, "examples": len(examples),
                "trainable": sum(p.numel() for p in params)}
    losses: list[float] = []
    folder = Path(folder) if folder else None
    if folder and (folder / CHECKPOINT).is_file():
        saved = json.loads((folder / SETTINGS).read_text())
        if saved != settings:
            raise ValueError(f"{folder} holds a run with other settings ({saved}), not {settings}: give another "
                             "folder, or delete this one to start over")
        state, done = load_checkpoint(folder / CHECKPOINT, optimizer)
        set_peft_model_state_dict(model, state)
        losses = done["losses"]
    elif folder:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / SETTINGS, json.dumps(settings, indent=2) + "\n")
    picks = order(len(examples), steps, batch, seed)
    model.train()
    bar = tqdm(total=steps, initial=len(losses), desc="fine-tuning", disable=not progress)
    for step in range(len(losses), steps):
        inputs = make_batch(processor, [examples[i] for i in picks[step * batch:(step + 1) * batch]])
        loss = model(**{k: v.to(model.device) for k, v in inputs.items()}).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(round(loss.item(), 4))
        bar.update()
        bar.set_postfix(loss=losses[-1])
        if folder and (len(losses) % save_every == 0 or len(losses) == steps):
            save_checkpoint(folder / CHECKPOINT, get_peft_model_state_dict(model), {"losses": losses}, optimizer)
    bar.close()
    model.eval()
    return losses
