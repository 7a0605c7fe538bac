"""Where the LoRA adapters go, for every model the fine-tuning notebook teaches: one home, used by the notebook,
`python -m vlsteps.finetune`, the memory table and the service (which loads a base model plus an adapter)."""
from __future__ import annotations

# The language model's attention projections (OPT: q/k/v/out_proj; T5: q/k/v/o; Qwen2: q/k/v/o_proj). The vision
# tower never matches: it stays frozen, as in every recipe the anchors' trackers ask about.
LANGUAGE_MODEL = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|out_proj|q|k|v|o)"
# BLIP-2's and InstructBLIP's Q-Former attention (query/value), for a new concept the frozen query tokens miss.
QFORMER = r".*qformer.*\.attention\.attention\.(query|value)"
# The models the notebook and the CLI fine-tune (registry keys).
KEYS = ("blip2", "instructblip", "qwen-vl")


def target_modules(qformer: bool = False) -> str:
    """peft's target_modules as one regex over full module names."""
    return f"(?:{LANGUAGE_MODEL})|(?:{QFORMER})" if qformer else LANGUAGE_MODEL


def lora_config(r: int = 16, qformer: bool = False):
    """The LoRA adapter the notebook trains: rank r, alpha 2r, dropout 0.05, on target_modules(qformer)."""
    from peft import LoraConfig
    return LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.05, target_modules=target_modules(qformer),
                      bias="none")
