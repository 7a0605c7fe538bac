"""BLIP-2 and InstructBLIP: Salesforce/blip2-opt-2.7b (notebooks/blip2.ipynb, instructblip; served),
instructblip-flan-t5-xl and instructblip-vicuna-7b (notebooks/instructblip.ipynb).

Their stand-ins keep the real shapes the notebooks teach: 224x224 images in 14x14 patches (256 patches + CLS),
32 learned query tokens, and the processor's `num_query_tokens` (without it the processor adds no `<image>`
placeholders and the model silently ignores the image). Hidden sizes are tiny (64). OPT's vocabulary is its
tokenizer's (3,001 rows, not the real 50,272: that embedding alone would outweigh the 4 MB of learned weights).

blip2 and instructblip learned the procedural world (`vlsteps.world`, `python -m tools.learn KEY`): BLIP-2 answers
its questions in "Question: ... Answer:", captions a scene given no prompt, and, like the real model, stops at once
after a bare question; InstructBLIP answers in its short-answer template and captions for `world.DESCRIBE`, with
the instruction read by the Q-Former too. Every part is trained (the real ViT and LLM are frozen, pre-trained
elsewhere; ours start random). instructblip-vicuna keeps random weights, its output layer made safe to decode.
Both train 4,800 steps at 1e-3 (28 and 25 minutes on one core; their records, vlsteps/standins/learned/*.json, hold
the measured shares). BLIP-2's Q-Former cannot see the question, so its 32 queries must carry the whole scene and
its OPT find the answer in them: with 2 OPT layers and one cross-attention layer it answered 0.69 (3,600 steps at
2e-3); with 4 OPT layers and cross-attention in both Q-Former layers, 0.855. InstructBLIP learns at 1e-3 too: at
2e-3 its Q-Former's output stopped depending on the image (answers 0.47 after 1,200 steps; 0.60 at 1e-3).
Its Q-Former must also answer the question alone, through a head on its mean query output thrown away after: then
what the queries pull out depends on the question (mean cosine of the visual tokens, caption request against a
question, on 200 held-out scenes: 0.77 without that head after 2,400 steps, 0.21 with it, 0.33 after 4,800) and
answers rose from 0.615 to 0.70 in 2,400 steps, and to 0.845 in 4,800.
"""
from __future__ import annotations

from .. import architectures, world
from ..prompts import instruction_prompt, qa_prompt
from .card import (TOKENIZER, VISION_TEXT, Card, Shape, WorldTraining, Workload, any_of, generate, random_ids,
                   random_pixels, vit_tokens)
from .common import harden_lm_head, patch_heads, patch_loss, patch_truth, seeded, sincos_positions

IMAGE_SIZE, PATCH_SIZE, NUM_QUERY_TOKENS = 224, 14, 32      # as in the real checkpoints
HIDDEN = 64
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


def _text_config(lm: str, tok):
    from transformers import LlamaConfig, OPTConfig, T5Config
    ids = dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    if lm == "opt":
        # OPT's real vocabulary is 50,272 rows: its tied embedding alone would be 50,272 x HIDDEN, more than the
        # learned weights may take (4 MB). The stand-in's vocabulary is its tokenizer's (3,000 words and <image>).
        # 4 layers: BLIP-2's OPT must find each answer among the 32 query outputs (2 answered 0.69, 4 0.855).
        return OPTConfig(vocab_size=len(tok), hidden_size=HIDDEN, ffn_dim=2 * HIDDEN, num_hidden_layers=4,
                         num_attention_heads=2, word_embed_proj_dim=HIDDEN, max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, **ids)
    if lm == "llama":
        return LlamaConfig(vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                           num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                           max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                           tie_word_embeddings=False, **ids)
    # Flan-T5: like the real text_config, no bos_token_id at all (see the instructblip notebook).
    return T5Config(vocab_size=len(tok), d_model=HIDDEN, d_kv=HIDDEN // 2, d_ff=2 * HIDDEN, num_layers=2,
                    num_decoder_layers=2, num_heads=2, feed_forward_proj="gated-gelu",
                    tie_word_embeddings=False, decoder_start_token_id=tok.pad_token_id, **ids)


def standin(arch: str, lm: str, learns: bool = True):
    """The stand-in builder for `arch` (blip2 or instructblip) over the language model `lm` (opt, t5 or llama);
    learns=False: one that keeps its random weights, made safe to decode."""
    def build(spec, out):
        _build(arch, lm, out, learns)
    return build


def _build(arch: str, lm: str, out, learns: bool):
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
    common = dict(text_config=_text_config(lm, tok),
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
        # Cross-attention in both Q-Former layers (the real one has it in 6 of 12): BLIP-2's queries, blind to the
        # question, must pull out the whole scene.
        config = Blip2Config(vision_config=Blip2VisionConfig(**vision),
                             qformer_config=Blip2QFormerConfig(vocab_size=len(tok),
                                                               **{**qformer, "cross_attention_frequency": 1}),
                             **common)
        seeded()
        model = Blip2ForConditionalGeneration(config).eval()
        processor = Blip2Processor(image_processor=image_processor, tokenizer=tok,
                                   num_query_tokens=NUM_QUERY_TOKENS)
    # transformers initialises the queries to zeros: then all 32 are the same vector and attend uniformly. Trained
    # queries differ from each other; random ones (seeded above) do too.
    with torch.no_grad():
        model.query_tokens.normal_(mean=0.0, std=1.0)
        if lm == "t5":
            # T5's untied output layer starts at std 1, logits of std sqrt(width): training starts from a loss of
            # 20. Scaled as T5 scales a tied one, it starts near log(vocabulary).
            model.language_model.lm_head.weight.mul_(HIDDEN ** -0.5)
    if not learns:
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


# ---- learning the procedural world (python -m tools.learn blip2 / instructblip) ----

CAPTION_SHARE, BARE_SHARE = 0.3, 0.1     # of BLIP-2's training examples; the rest are questions in its VQA format
QUESTION_SHARE = 0.7                     # of InstructBLIP's; the rest ask for a caption with world.DESCRIBE


def _blip2_example(scene, rng) -> tuple[str | None, str]:
    """(prompt, target) as BLIP-2 met them: a caption after no prompt, an answer after "Question: ... Answer:",
    and nothing (</s> at once) after a bare question, which is what the real model most often writes there."""
    r, qa = rng.random(), world.questions(scene)[rng.integers(len(world.questions(scene)))]
    caption = scene.captions[rng.integers(len(scene.captions))]
    if r < CAPTION_SHARE:
        return None, caption
    if r < CAPTION_SHARE + BARE_SHARE:
        return qa.question, ""
    return qa_prompt(qa.question), qa.answer


def _instructblip_example(scene, rng) -> tuple[str, str]:
    """(instruction, target): a question in InstructBLIP's short-answer template, or world.DESCRIBE -> a caption."""
    if rng.random() < QUESTION_SHARE:
        qa = world.questions(scene)[rng.integers(len(world.questions(scene)))]
        return instruction_prompt(qa.question), qa.answer
    return world.DESCRIBE, scene.captions[rng.integers(len(scene.captions))]


def _blip2_batch(processor, scenes, examples):
    """Parts of (scenes, examples, inputs and labels) for OPT: the loss falls on the target and </s> only, never on
    the image or the prompt; the captions without a prompt and the rest in two parts."""
    tok = processor.tokenizer
    groups = {}
    for scene, (prompt, target) in zip(scenes, examples):
        groups.setdefault(prompt is None, []).append((scene, prompt, target))
    batches = []
    for rows in groups.values():
        texts = [(f"{p} {t}" if p and t else p or t) + tok.eos_token for _, p, t in rows]
        inputs = processor(images=[world.draw(s, IMAGE_SIZE) for s, _, _ in rows], text=texts, padding=True,
                           return_tensors="pt")
        labels = inputs.input_ids.clone()
        for i, (_, p, _) in enumerate(rows):
            start = NUM_QUERY_TOKENS + (len(tok(p).input_ids) if p else 1)      # image, <s> and the prompt
            labels[i, :start] = -100
        labels[inputs.attention_mask == 0] = -100
        batches.append(([s for s, _, _ in rows], [(p, t) for _, p, t in rows], dict(inputs, labels=labels)))
    return batches


def _instructblip_batch(processor, scenes, examples):
    tok = processor.tokenizer
    inputs = processor(images=[world.draw(s, IMAGE_SIZE) for s in scenes], text=[i for i, _ in examples],
                       padding=True, return_tensors="pt")
    labels = tok([t for _, t in examples], padding=True, return_tensors="pt").input_ids
    labels[labels == tok.pad_token_id] = -100
    return [(scenes, examples, dict(inputs, labels=labels))]


def _classes(card):
    from transformers import (Blip2ForConditionalGeneration, Blip2Processor, InstructBlipForConditionalGeneration,
                              InstructBlipProcessor)
    if architectures.config(card.architecture)["model_type"] == "instructblip":
        return InstructBlipForConditionalGeneration, InstructBlipProcessor
    return Blip2ForConditionalGeneration, Blip2Processor


def train(card, folder, steps: int = 4800, batch: int = 32, lr: float = 1e-3) -> dict:
    """Everything trained at once (the real ones keep the ViT and the LLM frozen: ours have learned nothing to
    keep): cross-entropy on the targets, AdamW with a short warm-up and a cosine decay, fresh scenes every step.
    As blip-vqa's, the vision tower starts from sine-cosine positions and also learns, through linear heads thrown
    away after, what each patch shows (`world.patch_labels`); InstructBLIP's Q-Former answers the question too."""
    import math

    import numpy as np
    import torch
    model_cls, processor_cls = _classes(card)
    model, processor = model_cls.from_pretrained(folder), processor_cls.from_pretrained(folder)
    blip2 = model_cls.__name__.startswith("Blip2")
    example, make_batch = (_blip2_example, _blip2_batch) if blip2 else (_instructblip_example, _instructblip_batch)
    rng = np.random.default_rng(0)
    scenes = world.scenes(steps * batch, 0, "train")
    grid = IMAGE_SIZE // PATCH_SIZE
    with torch.no_grad():
        model.vision_model.embeddings.position_embedding[0, 1:] = sincos_positions(grid, HIDDEN)
    heads = patch_heads(HIDDEN)
    # InstructBLIP: a head on the Q-Former's mean query output answers the question alone (thrown away after)
    asks = torch.nn.Linear(model.config.qformer_config.hidden_size, len(world.ANSWERS)) if not blip2 else None
    trained = torch.nn.ModuleList([model, heads] + ([asks] if asks else []))
    optimizer = torch.optim.AdamW(trained.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    for step in range(steps):
        chunk = scenes[step * batch:(step + 1) * batch]
        examples = [example(s, rng) for s in chunk]
        parts = make_batch(processor, chunk, examples)
        optimizer.zero_grad()
        loss = told = 0.0
        for part_scenes, part_examples, part in parts:      # BLIP-2: the captions without a prompt, and the rest
            out = model(**part)
            truth = patch_truth(part_scenes, grid, IMAGE_SIZE)
            part_told = patch_loss(heads, out.vision_outputs.last_hidden_state[:, 1:], truth)
            if asks is not None:
                said = torch.tensor([world.ANSWERS.index(t) if t in world.ANSWERS else -100
                                     for _, t in part_examples])
                queries = out.qformer_outputs.last_hidden_state[:, :NUM_QUERY_TOKENS].mean(1)
                part_told = part_told + torch.nn.functional.cross_entropy(asks(queries), said)
            ((out.loss + part_told) * len(part_scenes) / len(chunk)).backward()
            loss += out.loss.item() * len(part_scenes) / len(chunk)
            told += part_told.item() * len(part_scenes) / len(chunk)
        torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.save_pretrained(folder)
    return {"steps": steps, "batch": batch, "scenes": len(scenes), "final_loss": round(loss, 4),
            "final_patch_loss": round(told, 4)}


def _answers(model, processor, images, prompts, max_new_tokens: int = 16, batch: int = 50) -> list[str]:
    """The notebooks' generate (greedy; a decoder-only LLM's prompt cut off; decoded without special tokens),
    for many images at once: prompts left-padded, as generation needs."""
    import torch
    processor.tokenizer.padding_side = "left"
    out = []
    for i in range(0, len(images), batch):
        text = None if prompts is None else prompts[i:i + batch]
        inputs = processor(images=images[i:i + batch], text=text, padding=True, return_tensors="pt")
        with torch.inference_mode():
            ids = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        if model.config.use_decoder_only_language_model and "input_ids" in inputs:
            ids = ids[:, inputs.input_ids.shape[1]:]
        out += [t.strip() for t in processor.batch_decode(ids, skip_special_tokens=True)]
    return out


def _held_out(n: int):
    """n test scenes, each with one of its questions (fixed by the seed)."""
    import numpy as np
    rng = np.random.default_rng(1)
    scenes = world.scenes(n, 0, "test")
    return scenes, [world.questions(s)[rng.integers(len(world.questions(s)))] for s in scenes]


def _share(texts, truths) -> float:
    return sum(t in truth for t, truth in zip(texts, truths)) / len(texts)


def _bare(model, processor, images, qas) -> dict:
    texts = _answers(model, processor, images, [qa.question for qa in qas])
    return {"answers without the format": _share(texts, [[qa.answer] for qa in qas]),
            "empty without the format": sum(not t for t in texts) / len(texts)}


def measure(card, folder, n: int = 200) -> dict:
    """On n held-out scenes, through the notebooks' calls. BLIP-2: one question each in "Question: ... Answer:",
    the same question bare, and a caption with no prompt. InstructBLIP: one question each in its short-answer
    template and world.DESCRIBE; it follows the instruction when the reply is the kind asked for (one of the
    world's answer words, a sentence of its grammar), right or wrong: "answers" and "captions" score those; and
    how far the question moves the 32 visual tokens from the caption instruction's (mean cosine)."""
    model_cls, processor_cls = _classes(card)
    model, processor = model_cls.from_pretrained(folder).eval(), processor_cls.from_pretrained(folder)
    scenes, qas = _held_out(n)
    images = [world.draw(s, IMAGE_SIZE) for s in scenes]
    answers = [[qa.answer] for qa in qas]
    captions = [s.captions for s in scenes]
    if model_cls.__name__.startswith("Blip2"):
        return {"answers with the format": _share(_answers(model, processor, images,
                                                           [qa_prompt(qa.question) for qa in qas]), answers),
                **_bare(model, processor, images, qas),
                "captions (exact)": _share(_answers(model, processor, images, None), captions)}
    questions = [instruction_prompt(qa.question) for qa in qas]
    replies = _answers(model, processor, images, questions)
    described = _answers(model, processor, images, [world.DESCRIBE] * n)
    followed = sum(r in world.ANSWERS for r in replies) + sum(world.parse(d) is not None for d in described)
    cosines = _cosines(model, processor, images, [world.DESCRIBE] * n, questions)
    return {"follows the instruction": followed / (2 * n), "answers": _share(replies, answers),
            "captions (exact)": _share(described, captions),
            "visual tokens' cosine, caption vs question": sum(cosines) / n}


def _cosines(model, processor, images, first, second, batch: int = 50) -> list[float]:
    """Per image, the mean cosine of its 32 visual tokens (`get_image_features`, as instructblip.ipynb compares
    them) under two instructions: 1 when the Q-Former ignores the instruction."""
    import torch
    out = []
    for i in range(0, len(images), batch):
        tokens = []
        for texts in (first[i:i + batch], second[i:i + batch]):
            x = processor(images=images[i:i + batch], text=texts, padding=True, return_tensors="pt")
            with torch.inference_mode():
                tokens.append(model.get_image_features(x.pixel_values, x.qformer_input_ids,
                                                       x.qformer_attention_mask).pooler_output)
        out += torch.nn.functional.cosine_similarity(*tokens, dim=-1).mean(-1).tolist()
    return out


CARDS = [
    Card("blip2", "Salesforce/blip2-opt-2.7b", 15.5, "float16", ("blip2", "instructblip", "finetune", "serve"),
         standin=standin("blip2", "opt"), summary=summary,
         workload=Workload("1 caption, 30 new tokens, greedy", answer), serve=serve, required=VISION_TEXT,
         training=WorldTraining('answers to questions in "Question: ... Answer:"; a caption with no prompt', train,
                                measure, goals={"answers with the format": 0.8},
                                floors={"answers with the format": 0.8, "empty without the format": 0.9})),
    Card("instructblip", "Salesforce/instructblip-flan-t5-xl", 16.0, "bfloat16", ("instructblip",),
         standin=standin("instructblip", "t5"), summary=summary,
         workload=Workload("1 answer, 30 new tokens, greedy", answer), required=INSTRUCTBLIP,
         training=WorldTraining("answers to short-answer questions, a caption for world.DESCRIBE; the Q-Former "
                                "reads the instruction", train, measure,
                                goals={"follows the instruction": 0.8, "answers": 0.8,
                                       "visual tokens' cosine, caption vs question": "< 0.99"},
                                floors={"follows the instruction": 0.95, "answers": 0.8})),
    Card("instructblip-vicuna", "Salesforce/instructblip-vicuna-7b", 31.8, "4-bit", ("instructblip",),
         standin=standin("instructblip", "llama", learns=False), summary=summary,
         workload=Workload("1 answer, 30 new tokens, greedy", answer), optional=True, required=INSTRUCTBLIP),
]
