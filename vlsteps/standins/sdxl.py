"""stabilityai/sdxl-turbo stand-in: a tiny StableDiffusionXLPipeline with the real classes and layout.

Like the real folder after `download_models.sh sdxl-turbo` (registry.SDXL_FP16_FILES), only the fp16
variant weights are written (`*.fp16.safetensors`), so the notebook loads it exactly like the real one:
`AutoPipelineForText2Image.from_pretrained(path, variant="fp16", dtype=...)`. The VAE keeps the real
downscale factor 8 (4 blocks) and 4 latent channels; the scheduler is the real one (Euler ancestral,
trailing timesteps), so 1-4 step generation runs the same code path.
"""
from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from .common import seeded
from .tiny_tokenizers import clip_tokenizer

TE_HIDDEN, TE2_HIDDEN, TE2_PROJECTION, TIME_EMBED = 32, 32, 32, 8


def _text_config(tok, hidden):
    return CLIPTextConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=tok.model_max_length,
                          projection_dim=TE2_PROJECTION, hidden_act="gelu", bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)


def build(spec, out):
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
