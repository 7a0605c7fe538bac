"""SDXL-Turbo: stabilityai/sdxl-turbo, a text-to-image pipeline (notebooks/clip.ipynb draws its retrieval set).

Its stand-in is a tiny StableDiffusionXLPipeline with the real classes and layout. Like the real folder after
`download_models.sh sdxl-turbo` (SDXL_FP16_FILES), only the fp16 variant weights are written
(`*.fp16.safetensors`), so the notebook loads it exactly like the real one:
`AutoPipelineForText2Image.from_pretrained(path, variant="fp16", dtype=...)`. The VAE keeps the real
downscale factor 8 (4 blocks) and 4 latent channels; the scheduler is the real one (Euler ancestral,
trailing timesteps), so 1-4 step generation runs the same code path. Its weights stay random, so it draws noise:
offline, clip.ipynb draws its retrieval set by code instead (`world.scene_for`: the world scene of each prompt) and
says so on screen.
"""
from __future__ import annotations

from .. import architectures
from .card import TOKENIZER, Card, Shape, Workload, any_of, random_ids, random_pixels
from .common import seeded

SDXL_FP16_FILES = (
    "model_index.json", "scheduler/*.json", "tokenizer/*", "tokenizer_2/*",
    "text_encoder/config.json", "text_encoder/model.fp16.safetensors",
    "text_encoder_2/config.json", "text_encoder_2/model.fp16.safetensors",
    "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors",
)
SDXL_REQUIRED = (*(f for f in SDXL_FP16_FILES if "*" not in f), "scheduler/scheduler_config.json",
                 any_of(*TOKENIZER, under="tokenizer/"), any_of(*TOKENIZER, under="tokenizer_2/"))
TE_HIDDEN, TE2_HIDDEN, TE2_PROJECTION, TIME_EMBED = 32, 32, 32, 8


def _text_config(tok, hidden):
    from transformers import CLIPTextConfig
    return CLIPTextConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=tok.model_max_length,
                          projection_dim=TE2_PROJECTION, hidden_act="gelu", bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)


def build(spec, out):
    from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from .tiny_tokenizers import clip_tokenizer
    tok, tok2 = clip_tokenizer(), clip_tokenizer()
    seeded(0)
    text_encoder = CLIPTextModel(_text_config(tok, TE_HIDDEN))
    seeded(1)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(tok2, TE2_HIDDEN))
    seeded(2)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, transformer_layers_per_block=(1, 1),
        cross_attention_dim=TE_HIDDEN + TE2_HIDDEN,              # the two text encoders' states, concatenated
        addition_embed_type="text_time", addition_time_embed_dim=TIME_EMBED,
        projection_class_embeddings_input_dim=6 * TIME_EMBED + TE2_PROJECTION,   # 6 size/crop ids + pooled text
        norm_num_groups=32)
    seeded(3)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16, 16, 16),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=1, norm_num_groups=8, sample_size=128, scaling_factor=0.13025,
                        force_upcast=True)
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                steps_offset=1, timestep_spacing="trailing", num_train_timesteps=1000)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tok,
                                     tokenizer_2=tok2, unet=unet, scheduler=scheduler)
    for model in (text_encoder, text_encoder_2, unet, vae):
        model.half()           # not pipe.to(float16): diffusers warns on a .to(dtype) cast of its models
    pipe.save_pretrained(out, variant="fp16")


def summary(configs: dict) -> dict[str, object]:
    """A pipeline's rows, from its components' configs: the UNet's channels, the text encoders' sizes."""
    rows: dict[str, object] = {"UNet channels per level": " / ".join(map(str, configs["unet"].block_out_channels))}
    for name in ("text_encoder", "text_encoder_2"):
        c = configs[name]
        rows[name.replace("_", " ")] = Shape(c.num_hidden_layers, c.hidden_size)
    return rows


def draw(card, models, device, dtype, g) -> int:
    import torch
    cfg = architectures.config(card.architecture)
    te1, te2, unet, vae = (models[c] for c in ("text_encoder", "text_encoder_2", "unet", "vae"))
    ids = random_ids(g, 77, 49400, device)
    h1 = te1(ids, output_hidden_states=True).hidden_states[-2]
    out2 = te2(ids, output_hidden_states=True)
    context = torch.cat([h1, out2.hidden_states[-2]], dim=-1)
    time_ids = torch.tensor([[512, 512, 0, 0, 512, 512]], device=device, dtype=dtype)
    latents = random_pixels(g, device, dtype, 1, 4, 64, 64)
    latents = unet(latents, torch.tensor([999], device=device), encoder_hidden_states=context,
                   added_cond_kwargs={"text_embeds": out2.text_embeds, "time_ids": time_ids}).sample
    vae.decode(latents / cfg["vae"]["scaling_factor"])
    return 0


CARDS = [
    Card("sdxl-turbo", "stabilityai/sdxl-turbo", 6.9, "float16", ("clip",), standin=build, summary=summary,
         workload=Workload("one 512x512 step: both text encoders, 1 UNet step, VAE decode", draw),
         files=SDXL_FP16_FILES, required=SDXL_REQUIRED),
]
