"""BLIP-2 and InstructBLIP: Salesforce/blip2-opt-2.7b (notebooks/blip2.ipynb, instructblip; served),
instructblip-flan-t5-xl and instructblip-vicuna-7b (notebooks/instructblip.ipynb).

Their stand-ins keep the real shapes the notebooks teach: 224x224 images in 14x14 patches (256 patches + CLS),
32 learned query tokens, and the processor's `num_query_tokens` (without it the processor adds no `<image>`
placeholders and the model silently ignores the image). Hidden sizes are tiny.
"""
from __future__ import annotations

from .. import architectures
from ..prompts import qa_prompt
from .card import TOKENIZER, VISION_TEXT, Card, Shape, Workload, any_of, generate, random_ids, random_pixels, vit_tokens
from .common import harden_lm_head, seeded

IMAGE_SIZE, PATCH_SIZE, NUM_QUERY_TOKENS = 224, 14, 32      # as in the real checkpoints
HIDDEN = 32
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
INSTRUCTBLIP = (*VISION_TEXT, any_of(*TOKENIZER, under="qformer_tokenizer/"))


def _tokenizer(lm: str):
    from transformers import AddedToken

    from .tiny_tokenizers import llama_tokenizer, opt_tokenizer, t5_tokenizer
    tok = {"opt": opt_tokenizer, "t5": t5_tokenizer, "llama": llama_tokenizer}[lm]()
    if tok.pad_token is None:            # Vicuna's tokenizer has none; the real processor pads with <unk>
        tok.pad_token = tok.unk_token
    # <image> exists before the config is built, so config.image_token_index can name its id.
    tok.add_tokens([AddedToken("<image>", normalized=False, special=True)], special_tokens=True)
    tok.image_token = "<image>"
    return tok


def _text_config(lm: str, tok, real: dict):
    from transformers import LlamaConfig, OPTConfig, T5Config
    ids = dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    if lm == "opt":
        # The real vocabulary size (50,272 rows: OPT's 50,265 tokens and <image>, padded), as the notebook prints
        # it: the tied embedding is 50,272 x 32, 6 MB. Flan-T5 (32,128) and Vicuna (32,000) have two untied such
        # matrices, so they keep the tiny tokenizer's size. harden_lm_head zeroes the rows past the tokenizer.
        return OPTConfig(vocab_size=real["vocab_size"], hidden_size=HIDDEN, ffn_dim=2 * HIDDEN, num_hidden_layers=2,
                         num_attention_heads=2, word_embed_proj_dim=HIDDEN, max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, **ids)
    if lm == "llama":
        return LlamaConfig(vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                           num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                           max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                           tie_word_embeddings=False, **ids)
    # Flan-T5: like the real text_config, no bos_token_id at all (see the instructblip notebook).
    return T5Config(vocab_size=len(tok), d_model=HIDDEN, d_kv=16, d_ff=2 * HIDDEN, num_layers=2,
                    num_decoder_layers=2, num_heads=2, feed_forward_proj="gated-gelu",
                    tie_word_embeddings=False, decoder_start_token_id=tok.pad_token_id, **ids)


def standin(arch: str, lm: str):
    """The stand-in builder for `arch` (blip2 or instructblip) over the language model `lm` (opt, t5 or llama)."""
    def build(spec, out):
        _build(arch, lm, spec, out)
    return build


def _build(arch: str, lm: str, spec, out):
    import torch
    from transformers import (Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, Blip2QFormerConfig,
                              Blip2VisionConfig, BlipImageProcessor, InstructBlipConfig,
                              InstructBlipForConditionalGeneration, InstructBlipProcessor, InstructBlipQFormerConfig,
                              InstructBlipVisionConfig)

    from .tiny_tokenizers import bert_tokenizer
    tok = _tokenizer(lm)
    image_processor = BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, resample=3,
                                         image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD,
                                         do_convert_rgb=True)
    vision = dict(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                  image_size=IMAGE_SIZE, patch_size=PATCH_SIZE)
    qformer = dict(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                   cross_attention_frequency=2, encoder_hidden_size=HIDDEN)
    common = dict(text_config=_text_config(lm, tok, architectures.config(spec.architecture)["text_config"]),
                  num_query_tokens=NUM_QUERY_TOKENS,
                  image_token_index=tok.convert_tokens_to_ids("<image>"))
    if arch == "instructblip":
        qtok = bert_tokenizer()
        # The real qformer tokenizer is bert-base-uncased plus a [DEC] bos token.
        qtok.add_special_tokens({"bos_token": "[DEC]"})
        config = InstructBlipConfig(vision_config=InstructBlipVisionConfig(**vision),
                                    qformer_config=InstructBlipQFormerConfig(vocab_size=len(qtok), **qformer),
                                    **common)
        seeded()
        model = InstructBlipForConditionalGeneration(config).eval()
        processor = InstructBlipProcessor(image_processor=image_processor, tokenizer=tok, qformer_tokenizer=qtok,
                                          num_query_tokens=NUM_QUERY_TOKENS)
    else:
        config = Blip2Config(vision_config=Blip2VisionConfig(**vision),
                             qformer_config=Blip2QFormerConfig(vocab_size=len(tok), **qformer), **common)
        seeded()
        model = Blip2ForConditionalGeneration(config).eval()
        processor = Blip2Processor(image_processor=image_processor, tokenizer=tok,
                                   num_query_tokens=NUM_QUERY_TOKENS)
    # transformers initialises the queries to zeros: then all 32 are the same vector and attend uniformly. Trained
    # queries differ from each other; random ones (seeded above) do too.
    with torch.no_grad():
        model.query_tokens.normal_(mean=0.0, std=1.0)
    # logit std 5 (not 10): nucleus sampling then has a few tokens to choose from, so sampled captions differ.
    harden_lm_head(model, tok, logit_std=5.0)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _lm_shape(t) -> Shape:
    if t.model_type == "t5":                                 # encoder + decoder
        return Shape(f"{t.num_layers}+{t.num_decoder_layers}", t.d_model)
    return Shape(t.num_hidden_layers, t.hidden_size)


def summary(config) -> dict[str, object]:
    v, q, t = config.vision_config, config.qformer_config, config.text_config
    return {"image encoder (ViT)": Shape(v.num_hidden_layers, v.hidden_size),
            "Q-Former": Shape(q.num_hidden_layers, q.hidden_size),
            f"language model ({t.model_type})": _lm_shape(t), "vocabulary": t.vocab_size,
            "image tokens (patches + [CLS])": vit_tokens(v), "query tokens": config.num_query_tokens}


def answer(card, models, device, dtype, g) -> int:
    """One caption or answer (30 new tokens, greedy) after the image's query tokens and a 12-token prompt; an
    InstructBLIP Q-Former reads the prompt too."""
    import torch
    cfg = architectures.config(card.architecture)
    image = torch.full((1, cfg["num_query_tokens"]), cfg["image_token_index"], device=device)
    ids = torch.cat([image, random_ids(g, 12, cfg["image_token_index"] - 1, device)], dim=1)
    inputs = dict(pixel_values=random_pixels(g, device, dtype, 1, 3, 224, 224), input_ids=ids,
                  attention_mask=torch.ones_like(ids))
    if cfg["model_type"] == "instructblip":
        q = random_ids(g, 12, cfg["qformer_config"]["vocab_size"], device)
        inputs.update(qformer_input_ids=q, qformer_attention_mask=torch.ones_like(q))
    return generate(models[None], 30, **inputs)


def blip2_prompt(prompt: str | None) -> str | None:
    """BLIP-2's text input for a served request's prompt (None: caption unprompted), as the service's caption model
    table says: a question becomes BLIP-2's VQA format, one already in it is kept, anything else is dropped."""
    text = " ".join((prompt or "").split())
    if text.lower().startswith("question:"):
        return text
    return qa_prompt(text) if text.endswith("?") else None


def serve(path, dtype, device) -> dict:
    import transformers as t
    processor = t.Blip2Processor.from_pretrained(path)
    model = t.Blip2ForConditionalGeneration.from_pretrained(path, dtype=dtype).to(device)

    def prepare(image, prompt):
        return dict(processor(images=image, text=blip2_prompt(prompt), return_tensors="pt"))

    return dict(model=model, decode=lambda ids: processor.decode(ids, skip_special_tokens=True), prepare=prepare,
                image_processor=processor.image_processor)


CARDS = [
    Card("blip2", "Salesforce/blip2-opt-2.7b", 15.5, "float16", ("blip2", "instructblip", "serve"),
         standin=standin("blip2", "opt"), summary=summary,
         workload=Workload("1 caption, 30 new tokens, greedy", answer), serve=serve, required=VISION_TEXT),
    Card("instructblip", "Salesforce/instructblip-flan-t5-xl", 16.0, "bfloat16", ("instructblip",),
         standin=standin("instructblip", "t5"), summary=summary,
         workload=Workload("1 answer, 30 new tokens, greedy", answer), required=INSTRUCTBLIP),
    Card("instructblip-vicuna", "Salesforce/instructblip-vicuna-7b", 31.8, "4-bit", ("instructblip",),
         standin=standin("instructblip", "llama"), summary=summary,
         workload=Workload("1 answer, 30 new tokens, greedy", answer), optional=True, required=INSTRUCTBLIP),
]
