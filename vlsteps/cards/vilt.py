"""ViLT: dandelin/vilt-b32-finetuned-vqa, visual question answering as classification (notebooks/vilt.ipynb).

Its stand-in has the real image size (384), patch size (32) and 40-token text limit,
so the joint sequence the notebook prints has the real checkpoint's layout; the real 3,129-answer head and the
real 30,522-token (bert-base-uncased) vocabulary size, over a tiny 32-wide transformer."""
from __future__ import annotations

from .. import architectures
from .card import VISION_TEXT, Card, Shape, Workload, random_ids, random_pixels
from .common import TINY, seeded

MAX_TEXT = 40   # real: tokenizer model_max_length == max_position_embeddings == 40

# The real answer strings ship only with the checkpoint (no offline source), so a few plausible answers come first
# and the rest are numbered "answer <id>"; these ids are not the real checkpoint's.
FIRST_ANSWERS = ["yes", "no", "0", "1", "2", "3", "4", "cat", "dog", "coffee", "cup", "rocket", "motorcycle",
                 "astronaut", "woman", "man", "red", "white", "black", "blue", "brown", "orange", "green",
                 "sitting", "standing", "table", "space", "outside", "inside", "nothing"]


def build(spec, out):
    import torch
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor

    from .tiny_tokenizers import bert_tokenizer
    # The real head's 3,129 answers (VQA v2 training answers that occur at least 9 times) and bert-base-uncased's
    # 30,522-token vocabulary size: the tiny WordPiece fills the first rows, no text reaches the others.
    real = architectures.config(spec.architecture)
    tok = bert_tokenizer(model_max_length=MAX_TEXT)
    answers = FIRST_ANSWERS + [f"answer {i}" for i in range(len(FIRST_ANSWERS), real["num_labels"])]
    config = ViltConfig(vocab_size=real["vocab_size"], max_position_embeddings=MAX_TEXT, image_size=384, patch_size=32,
                        id2label=dict(enumerate(answers)), label2id={a: i for i, a in enumerate(answers)},
                        pad_token_id=tok.pad_token_id, initializer_range=0.5, **TINY)
    # initializer_range 0.5 (real init: 0.02): random answers then differ from question to question, so a
    # notebook shows that the question reaches the classifier, instead of one flat row of ~0.5s. The last layer is
    # then scaled down (rankings unchanged; its bias is zero): the top of 3,129 such logits would all read 1.00.
    seeded()
    model = ViltForQuestionAnswering(config)
    with torch.no_grad():
        model.classifier[-1].weight.mul_(0.25)
    model.save_pretrained(out)
    image_processor = ViltImageProcessor(size={"shortest_edge": 384}, size_divisor=32,
                                         image_mean=[0.5] * 3, image_std=[0.5] * 3)
    ViltProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)


def summary(config) -> dict[str, object]:
    return {"transformer": Shape(config.num_hidden_layers, config.hidden_size),
            "vocabulary": config.vocab_size, "text tokens (max)": config.max_position_embeddings,
            "answers": config.num_labels}


def answer(card, models, device, dtype, g) -> int:
    import torch
    ids = random_ids(g, 12, architectures.config(card.architecture)["vocab_size"], device)
    models[None](input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids),
                 pixel_values=random_pixels(g, device, dtype, 1, 3, 384, 512),
                 pixel_mask=torch.ones(1, 384, 512, dtype=torch.long, device=device))
    return 0


CARDS = [
    Card("vilt", "dandelin/vilt-b32-finetuned-vqa", 0.47, "float32", ("vilt",), standin=build, summary=summary,
         workload=Workload("answer 1 question (384x512 image)", answer), revision="refs/pr/9", required=VISION_TEXT),
]
