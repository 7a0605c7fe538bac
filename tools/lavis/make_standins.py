"""Tiny offline stand-ins for the LAVIS BLIP-2 route: a fake Hugging Face cache and torch-hub cache.

    .venv-lavis/bin/python tools/lavis/make_standins.py ROOT      (prints the environment to export)

LAVIS fetches its pieces by name at load time: the Q-Former's BERT (`bert-base-uncased`) and the language model
(`google/flan-t5-xl`) from the Hugging Face hub, and its own checkpoints (`eva_vit_g.pth`,
`blip2_caption_flant5xl.pth`, ...) from Salesforce's storage into torch hub's cache. This writes tiny random
copies under exactly those names:

    ROOT/hf/hub/models--bert-base-uncased/snapshots/<commit>/    BertTokenizer + tiny BERT
    ROOT/hf/hub/models--google--flan-t5-xl/snapshots/<commit>/   T5TokenizerFast + tiny T5
    ROOT/torch/hub/checkpoints/*.pth                             empty BLIP-2 checkpoints (random init)

With HF_HOME=ROOT/hf TORCH_HOME=ROOT/torch HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 the unmodified
`load_model_and_preprocess(name="blip2_t5", model_type="caption_coco_flant5xl", ...)` then loads without a
network. One thing cannot be shrunk through files: LAVIS hard-codes the 1B-parameter EVA ViT-g in
`create_eva_vit_g`, so `shrink_eva_vit()` swaps in a tiny one with the same class.

Runs in the LAVIS environment (transformers 4.26, tokenizers 0.13). Deterministic: hand-built vocabularies
(nothing trained), a fixed seed before each model, so rebuilding gives byte-identical files.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import sys
import tempfile
from pathlib import Path

FAKE_COMMIT = "0" * 40
MARKER = "vlsteps_standin.json"   # the main stand-ins' marker name: vlsteps.is_standin(root) reads it
HIDDEN = 32
WORDS = sorted(set(
    "a an the of on in with and is are there this that what which where how many color photo picture image "
    "cat dog man woman person people car tree house street table cup coffee plate rocket astronaut space "
    "red blue green white black brown orange small large two three sitting standing wearing question answer "
    "yes no city why".split()))
# LAVIS's BLIP-2 checkpoints (torch hub cache names). Empty: LAVIS loads them with strict=False, so the
# Q-Former, query tokens and projection keep their (seeded) random init.
CHECKPOINTS = {
    "eva_vit_g.pth": {},
    "blip2_caption_flant5xl.pth": {"model": {}},
    "blip2_pretrained_flant5xl.pth": {"model": {}},
}


def builder_version() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def real_cached(environ=os.environ) -> bool:
    """Whether LAVIS's real pieces are in the caches it reads (HF_HOME / HF_HUB_CACHE, TORCH_HOME): then the
    notebook uses them, and `make run` says so."""
    hf_hub = Path(environ.get("HF_HUB_CACHE") or
                  Path(environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub")
    torch_checkpoints = Path(environ.get("TORCH_HOME") or
                             Path(environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "torch") / "hub/checkpoints"
    return (all((hf_hub / f"models--{repo.replace('/', '--')}").is_dir() for repo in ("google/flan-t5-xl",
                                                                                       "bert-base-uncased"))
            and all((torch_checkpoints / name).is_file() for name in ("eva_vit_g.pth", "blip2_caption_flant5xl.pth")))


def env_for(root: Path) -> dict[str, str]:
    """The variables that point Hugging Face, torch hub and LAVIS at the stand-ins, offline."""
    root = Path(root)
    return {"HF_HOME": str(root / "hf"), "TORCH_HOME": str(root / "torch"),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _snapshot(hf_home: Path, repo_id: str) -> Path:
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(FAKE_COMMIT)
    snap = repo / "snapshots" / FAKE_COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def _seeded(seed: int = 0) -> None:
    import torch
    torch.manual_seed(seed)


def make_bert(hf_home: Path) -> None:
    """bert-base-uncased layout: [PAD]=0, [unused*], [UNK] [CLS] [SEP] [MASK], words, chars, ##chars."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer
    snap = _snapshot(hf_home, "bert-base-uncased")
    chars = sorted(set(string.ascii_lowercase + string.digits + ".,?!:;'\"()-"))
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(4)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [w for w in WORDS if w not in vocab] + [c for c in chars if c not in WORDS] + ["##" + c for c in chars]
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(vocab) + "\n")
        BertTokenizer(str(vocab_file), do_lower_case=True, model_max_length=512).save_pretrained(snap)
    config = BertConfig(vocab_size=len(vocab), hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=2 * HIDDEN, max_position_embeddings=512)
    _seeded()
    BertForMaskedLM(config).save_pretrained(snap)


def _t5_tokenizer():
    """A hand-built Unigram tokenizer with the T5 layout: <pad>=0 </s>=1 <unk>=2, then pieces."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -3.0)]
    pieces += [("\u2581" + w, -5.0) for w in WORDS] + [(w, -6.0) for w in WORDS]
    seen = {p for p, _ in pieces}
    pieces += [(c, -10.0) for c in string.ascii_letters + string.digits + string.punctuation if c not in seen]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", add_prefix_space=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", add_prefix_space=True)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           extra_ids=0, model_max_length=512)


def make_t5(hf_home: Path, repo_id: str = "google/flan-t5-xl") -> None:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration
    snap = _snapshot(hf_home, repo_id)
    tok = _t5_tokenizer()
    tok.save_pretrained(snap)
    config = T5Config(vocab_size=len(tok), d_model=HIDDEN, d_kv=16, d_ff=2 * HIDDEN, num_layers=2,
                      num_decoder_layers=2, num_heads=2, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    _seeded()
    model = T5ForConditionalGeneration(config)
    # Random weights must still decode to words: zero the rows of all but whole-word pieces ("\u2581cat"), and
    # scale those so that one of them always wins (no empty captions, no "</s>" at step one, spaces between).
    weight = model.lm_head.weight
    pieces = tok.convert_ids_to_tokens(list(range(len(tok))))
    good = [i for i, p in enumerate(pieces) if p.startswith("\u2581") and p[1:] in WORDS]
    bad = [i for i in range(weight.shape[0]) if i not in set(good)]
    with torch.no_grad():
        weight[bad] = 0
        weight[good] = weight[good] / weight[good].std() * (5.0 / HIDDEN ** 0.5)
    model.save_pretrained(snap)


def make_torch_hub(torch_home: Path) -> None:
    import torch
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for name, state in CHECKPOINTS.items():
        torch.save(state, folder / name)


def build(root) -> Path:
    """Build the stand-ins into root (replacing what was there), atomically."""
    root = Path(root).resolve()
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        (tmp / "hf" / "hub").mkdir(parents=True)
        (tmp / "hf" / "hub" / "version.txt").write_text("1")   # no "migrating your old cache" message
        make_bert(tmp / "hf")
        make_t5(tmp / "hf")
        make_torch_hub(tmp / "torch")
        (tmp / MARKER).write_text(json.dumps({"builder": builder_version()}) + "\n")
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def ensure(root) -> Path:
    """The stand-ins in root, built only when missing or made by an older version of this file."""
    root = Path(root).resolve()
    try:
        if json.loads((root / MARKER).read_text())["builder"] == builder_version():
            return root
    except (OSError, ValueError, KeyError):
        pass
    return build(root)


def shrink_eva_vit(depth: int = 2, embed_dim: int = HIDDEN) -> None:
    """Make LAVIS build a tiny EVA ViT instead of the hard-coded 1B-parameter ViT-g (stand-ins only).

    Same class (`lavis.models.eva_vit.VisionTransformer`), patch size 14 and image size as asked, so the
    shapes in the notebook keep their real token counts; only the width and depth shrink.
    """
    from functools import partial

    import torch.nn as nn
    import lavis.models.blip2_models.blip2 as blip2_module
    from lavis.models.eva_vit import VisionTransformer

    def create_tiny_eva_vit(img_size=224, drop_path_rate=0.4, use_checkpoint=False, precision="fp16"):
        return VisionTransformer(img_size=img_size, patch_size=14, use_mean_pooling=False, embed_dim=embed_dim,
                                 depth=depth, num_heads=2, mlp_ratio=2.0, qkv_bias=True,
                                 drop_path_rate=drop_path_rate, norm_layer=partial(nn.LayerNorm, eps=1e-6),
                                 use_checkpoint=use_checkpoint)

    blip2_module.create_eva_vit_g = create_tiny_eva_vit   # blip2.py did `from ...eva_vit import create_eva_vit_g`


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit(f"usage: {Path(__file__).name} ROOT")
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    root = build(argv[0])
    print(json.dumps(env_for(root)))


if __name__ == "__main__":
    main(sys.argv[1:])
