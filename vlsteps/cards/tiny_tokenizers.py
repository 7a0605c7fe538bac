"""Tiny tokenizers built offline, wrapped in the real checkpoints' tokenizer classes.

BPE training is deterministic, so BPE vocabularies are trained on a fixed corpus; WordPiece and
Unigram training are not, so those vocabularies are built by hand from the same corpus. The corpus is the
procedural world's text (what the stand-ins learn), a real English word list (ImageNet's 1,000 class names,
shipped with torchvision) and a few sentences in each model's prompt formats, so common words stay whole, as a
real tokenizer keeps them.
"""
from __future__ import annotations

import functools
import json
import re
import string

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

PROMPTS = [
    "a photo of a cat", "a photo of a dog", "a picture of a bird sitting on a branch",
    "an image of a red car on the street", "two people riding bicycles in the park",
    "what is in the picture? how many cats are there? what color is the car?",
    "a man holding a snowboard", "a woman standing next to a horse", "yes no one two three",
    "a bowl of fruit on a wooden table with a cup of coffee", "an astronaut and a rocket",
    "Question: how many cats are there? Answer: there are two cats on the sofa.",
    "Describe this image. A photo of a dog, a cat, a red car and a blue sky.",
    "Detect the bounding box of the cat and output it in JSON format.",
    'Output: [{"bbox_2d": [10, 20, 110, 220], "label": "cat"}]',
    "What color is it? It is red, green, blue, yellow, black or white.",
    "Please answer the question in one word. Yes. No. Maybe.",
    "<grounding> An image of a snowman warming himself by a fire.",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000",
] * 4
# Everyday words the notebooks' prompts and a learner's questions use, beside the world's and ImageNet's.
EVERYDAY = """the a an of in on at to from with and or but not no yes is are was were be been this that these those
it its there here what which who whom whose where when why how many much more most some any all each every other
one two three four five six seven eight nine ten first second last next left right top bottom middle above below
under over near behind front back inside outside between image images picture pictures photo photos caption
captions describe description question answer answers object objects thing things shape shapes colour color colors
colours size small large big little tall short long wide round square circle triangle red green blue yellow
purple orange black white grey gray brown pink man woman men women person people child children boy girl dog cat
animal animals bird birds horse car bus train truck bike bicycle street road tree trees sky water sea beach house
building room table chair bed food fruit plate cup glass window door wall floor grass field snow sitting standing
walking running riding holding looking playing eating wearing shows showing contains draws drawn see seen look say
said find found count counted box boxes bounding detect located location position""".split()


@functools.cache
def corpus() -> tuple[str, ...]:
    from torchvision.models import ViT_B_16_Weights

    from .. import world
    text = [*world.LABELS, *world.ANSWERS, world.DESCRIBE]
    for scene in world.scenes(100, 0, "train", held_out=False):
        text += scene.captions + [f"{qa.question} {qa.answer}" for qa in world.questions(scene)]
    imagenet = [*ViT_B_16_Weights.IMAGENET1K_V1.meta["categories"], *EVERYDAY]
    # Every printable ASCII char, word-internally and word-finally (CLIP's "</w>" forms).
    chars = [" ".join(c + " " + c + c for c in string.printable.strip())] * 2
    return tuple(PROMPTS + text * 3 + [" ".join(imagenet).lower()] * 2 + chars)


def _words(lower: bool = False) -> list[str]:
    text = " ".join(corpus())
    return sorted({w for w in re.findall(r"\w+|[^\w\s]", text.lower() if lower else text)})


def _trained(tok, vocab_size: int):
    return tok.train_new_from_iterator(iter(corpus()), vocab_size=vocab_size, show_progress=False)


def _canonical_merges(merges: list[tuple[str, str]], words) -> list[tuple[str, str]]:
    """Merges in an order that does not depend on the run: by the count each had when it was made (replayed on
    the corpus's words), then by the length of what it makes (a merge's parts come before it), then by text.
    Training picks among merges of equal count in a different order on each call; any of those orders is one
    the trainer could have produced."""
    from collections import Counter, defaultdict
    counts = Counter(words)
    symbols = {w: list(w[:-1]) + [w[-1] + "</w>"] for w in counts}
    where = defaultdict(set)                 # pair -> words holding it
    for w, sym in symbols.items():
        for pair in zip(sym, sym[1:]):
            where[pair].add(w)
    made = {}
    for a, b in merges:
        made[(a, b)] = 0
        for w in list(where.pop((a, b), ())):
            sym, out, i = symbols[w], [], 0
            while i < len(sym):
                if i + 1 < len(sym) and sym[i] == a and sym[i + 1] == b:
                    out.append(a + b)
                    made[(a, b)] += counts[w]
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            for pair in zip(sym, sym[1:]):
                where[pair].discard(w)
            symbols[w] = out
            for pair in zip(out, out[1:]):
                where[pair].add(w)
    return sorted(merges, key=lambda m: (-made[m], len(m[0] + m[1]), m[0] + m[1], m[0]))


def clip_tokenizer(vocab_size: int = 3000):
    """A trained CLIP BPE with its vocabulary and merges put in a fixed order.

    Training yields the same tokens every time but numbers them and orders merges of equal count differently on
    each call. Here specials keep their ids, the other tokens are numbered by (length, text), and the merges are
    ordered by `_canonical_merges` (their order is their priority: sorting them by length alone splits words)."""
    import tempfile
    from pathlib import Path

    from transformers import CLIPTokenizer
    base = CLIPTokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        _trained(base, vocab_size).save_pretrained(tmp)
        path = Path(tmp) / "tokenizer.json"
        data = json.loads(path.read_text())
        model = data["model"]
        vocab = model["vocab"]
        special = sorted((t["content"] for t in data["added_tokens"]), key=vocab.get)
        if [vocab[t] for t in special] != list(range(len(special))):
            raise RuntimeError(f"expected the special tokens first in the vocabulary, got {special}")
        rest = sorted((t for t in vocab if t not in special), key=lambda t: (len(t), t))
        model["vocab"] = {t: i for i, t in enumerate(special + rest)}
        backend = base.backend_tokenizer
        words = [piece for text in corpus()
                 for piece, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        model["merges"] = [list(m) for m in _canonical_merges(merges, words)]
        path.write_text(json.dumps(data, ensure_ascii=False))
        tok = CLIPTokenizer.from_pretrained(tmp)
    tok.model_max_length = 77
    return tok


def gpt2_tokenizer(vocab_size: int = 3000):
    from transformers import GPT2Tokenizer
    tok = _trained(GPT2Tokenizer(), vocab_size)
    tok.model_max_length = 1024
    return tok


def bert_tokenizer(model_max_length: int = 512):
    """Uncased WordPiece like bert-base-uncased: specials, whole words, chars and ##chars."""
    from transformers import BertTokenizer
    chars = sorted(set(string.ascii_lowercase + string.digits + ".,?!:;'\"[]{}()-_/<>"))
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + _words(lower=True)
    toks += [c for c in chars if c not in toks] + ["##" + c for c in chars]
    return BertTokenizer(vocab={t: i for i, t in enumerate(toks)}, do_lower_case=True,
                         model_max_length=model_max_length)


def _unigram_vocab(specials: list[tuple[str, float]]) -> list[tuple[str, float]]:
    words = _words()
    chars = sorted(set("".join(words)) | set(string.ascii_letters + string.digits))
    vocab = specials + [("▁", -3.0)] + [("▁" + w, -5.0) for w in words] + [(w, -6.0) for w in words]
    return vocab + [(c, -10.0) for c in chars if c not in words]


def t5_tokenizer():
    """Flan-T5 layout: <pad>=0 </s>=1 <unk>=2, pieces, then <extra_id_*>."""
    from transformers import T5Tokenizer
    vocab = _unigram_vocab([("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)])
    return T5Tokenizer(vocab=vocab, extra_ids=10, model_max_length=512)


def xlmr_tokenizer():
    """XLM-R layout (Kosmos-2): <s>=0 <pad>=1 </s>=2 <unk>=3, pieces, <mask> last."""
    from transformers import XLMRobertaTokenizer
    vocab = _unigram_vocab([("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)])
    return XLMRobertaTokenizer(vocab=vocab + [("<mask>", 0.0)], model_max_length=512)


def _bytelevel_bpe(vocab_size: int, special_tokens: list[str], qwen_style: bool = False):
    tok = Tokenizer(models.BPE())
    if qwen_style:
        from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def opt_tokenizer(vocab_size: int = 3000):
    """facebook/opt-* layout: <s>=0 <pad>=1 </s>=2 <unk>=3; bos=eos=unk='</s>', BOS prepended."""
    from transformers import GPT2Tokenizer
    vocab, merges = _bytelevel_bpe(vocab_size, ["<s>", "<pad>", "</s>", "<unk>"])
    return GPT2Tokenizer(vocab=vocab, merges=merges, bos_token="</s>", eos_token="</s>", unk_token="</s>",
                         pad_token="<pad>", add_bos_token=True, model_max_length=512)


def llama_tokenizer(vocab_size: int = 3000):
    """Llama/Vicuna layout: <unk>=0 <s>=1 </s>=2, <0x00>..<0xFF>, then merged pieces (byte fallback)."""
    from transformers import LlamaTokenizer
    t = Tokenizer(models.BPE(byte_fallback=True, fuse_unk=True))
    # Trained word by word (split=True) so no merge spans a space, as sentencepiece's do not; the tokenizer that
    # LlamaTokenizer builds from these merges splits as the real one (split=False).
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    byte_toks = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"] + byte_toks,
                                  show_progress=False)
    t.train_from_iterator(corpus(), trainer)
    model = json.loads(t.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return LlamaTokenizer(vocab=model["vocab"], merges=merges, add_bos_token=True, add_eos_token=False,
                          model_max_length=2048)


QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                 "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
QWEN_NONSPECIAL = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                   "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]


def qwen_tokenizer(vocab_size: int = 3000, chat_template: str | None = None):
    """Qwen2 BPE with the Qwen special tokens appended after the BPE vocabulary, as in the real one."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    vocab, merges = _bytelevel_bpe(vocab_size, [], qwen_style=True)
    for t in QWEN_SPECIALS + QWEN_NONSPECIAL:
        vocab.setdefault(t, len(vocab))
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token="<|im_end|>",
                         pad_token="<|endoftext|>", errors="replace", model_max_length=32768,
                         extra_special_tokens=QWEN_SPECIALS[1:])
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIALS], special_tokens=True)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in QWEN_NONSPECIAL])
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok
