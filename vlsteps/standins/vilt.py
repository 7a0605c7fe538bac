"""dandelin/vilt-b32-finetuned-vqa stand-in: real image size (384), patch size (32) and 40-token text limit,
so the joint sequence the notebook prints has the real checkpoint's layout."""
from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor

from .common import TINY, seeded
from .tiny_tokenizers import bert_tokenizer

MAX_TEXT = 40   # real: tokenizer model_max_length == max_position_embeddings == 40

# The real head classifies over 3,129 VQA v2 answers; a small plausible subset keeps prints readable.
ANSWERS = ["yes", "no", "0", "1", "2", "3", "4", "cat", "dog", "coffee", "cup", "rocket", "motorcycle",
           "astronaut", "woman", "man", "red", "white", "black", "blue", "brown", "orange", "green",
           "sitting", "standing", "table", "space", "outside", "inside", "nothing"]


def build(spec, out):
    # initializer_range 0.5 (real init: 0.02): random answers then differ from question to question, so a
    # notebook shows that the question reaches the classifier, instead of one flat row of ~0.5s.
    tok = bert_tokenizer(model_max_length=MAX_TEXT)
    config = ViltConfig(vocab_size=len(tok), max_position_embeddings=MAX_TEXT, image_size=384, patch_size=32,
                        id2label=dict(enumerate(ANSWERS)), label2id={a: i for i, a in enumerate(ANSWERS)},
                        pad_token_id=tok.pad_token_id, initializer_range=0.5, **TINY)
    seeded()
    ViltForQuestionAnswering(config).save_pretrained(out)
    image_processor = ViltImageProcessor(size={"shortest_edge": 384}, size_divisor=32,
                                         image_mean=[0.5] * 3, image_std=[0.5] * 3)
    ViltProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)
