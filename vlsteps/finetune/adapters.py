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


def lora_config(r: int = 8, qformer: bool = False, new_tokens: list[int] = ()):
    """The LoRA adapter the notebook trains: rank r, alpha 2r, dropout 0.05, on target_modules(qformer); and the
    rows of `new_tokens` (ids of words the model has never written) in the input embedding and the output layer,
    trained whole: a low-rank change of attention cannot make a word's output row that was never trained win.
    Both are named: the two share one matrix in OPT and Qwen2, and peft trains the rows of each (tied into one where
    the model's config says they are shared, as Qwen2.5-VL's does)."""
    from peft import LoraConfig
    rows = {"embed_tokens": list(new_tokens), "lm_head": list(new_tokens)} if new_tokens else None
    return LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.05, target_modules=target_modules(qformer),
                      bias="none", trainable_token_indices=rows)


def new_token_ids(tokenizer, words) -> list[int]:
    """The token ids that write `words` after a space (BLIP-2's answer follows its prompt) and at the start of a text
    (Qwen2.5-VL's answer opens the assistant's turn), without special tokens. The output rows of the form a
    model's answers do not use are trained too, only to stay unlikely."""
    ids = {i for word in words for form in (" " + word, word)
           for i in tokenizer(form, add_special_tokens=False).input_ids}
    return sorted(ids)
