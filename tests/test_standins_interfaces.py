"""Stand-ins keep the real checkpoints' interface sizes: what a notebook prints about them is the real figure."""
import pytest
import torch
import transformers as tf
from PIL import Image

from vlsteps import architectures, registry, world
from vlsteps.standins import build

PHOTO = Image.new("RGB", (300, 200), (120, 80, 40))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    return {key: build(registry.get(key), root) for key in ("vit", "clip", "vilt", "blip2")}


def test_clip_embeds_images_and_texts_in_the_real_768_d_space(built):
    from vlsteps.embed import ClipEmbedder
    real = architectures.config("clip")
    model, processor = tf.CLIPModel.from_pretrained(built["clip"]), tf.CLIPProcessor.from_pretrained(built["clip"])
    assert real["projection_dim"] == 768 and model.config.projection_dim == 768
    inputs = processor(images=[PHOTO], text=["a photo of a cat"], return_tensors="pt")
    with torch.no_grad():
        img = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        txt = model.get_text_features(input_ids=inputs["input_ids"]).pooler_output
    assert img.shape == txt.shape == (1, 768)
    embedder = ClipEmbedder(model, processor, device="cpu", model_key="clip")
    assert embedder.dim == 768 and embedder.collection_tag.startswith("clip-768d-")


def test_clip_text_tower_holds_one_row_per_token_of_its_tokenizer(built):
    """Not the real 49,408 rows: the stand-in's vocabulary is its tokenizer's (vlsteps/cards/clip.py says why)."""
    model, tok = tf.CLIPModel.from_pretrained(built["clip"]), tf.CLIPTokenizer.from_pretrained(built["clip"])
    assert model.config.text_config.vocab_size == len(tok) < architectures.config("clip")["text_config"]["vocab_size"]
    assert model.text_model.embeddings.token_embedding.weight.shape == (len(tok), model.config.text_config.hidden_size)


def test_vilt_answers_with_the_words_of_the_world_it_learned(built):
    model = tf.ViltForQuestionAnswering.from_pretrained(built["vilt"])
    processor = tf.ViltProcessor.from_pretrained(built["vilt"])
    assert architectures.config("vilt")["num_labels"] == 3129
    with torch.no_grad():
        logits = model(**processor([PHOTO, PHOTO], ["how many cats?", "what color?"], return_tensors="pt",
                                   padding=True)).logits
    assert logits.shape == (2, len(world.ANSWERS))
    assert list(model.config.id2label.values()) == list(world.ANSWERS)     # real words, no "answer 2928"
    assert model.config.vocab_size == len(processor.tokenizer)


def test_vit_classifies_into_the_classes_of_the_world_it_learned(built):
    labels = tf.ViTForImageClassification.from_pretrained(built["vit"]).config.id2label
    assert architectures.config("vit")["num_labels"] == 1000        # the real head: ImageNet-1k
    assert list(labels.values()) == list(world.LABELS) and len(set(labels.values())) == 15


def test_blip2_language_model_has_one_row_per_token_and_never_emits_past_the_tokenizer(built):
    model = tf.Blip2ForConditionalGeneration.from_pretrained(built["blip2"]).eval()
    processor = tf.Blip2Processor.from_pretrained(built["blip2"])
    assert architectures.config("blip2")["text_config"]["vocab_size"] == 50272          # the real OPT's rows
    # The learned stand-in keeps one row per token of its tokenizer (the real size would add rows no text uses).
    assert model.config.text_config.vocab_size == model.get_output_embeddings().weight.shape[0] == \
        len(processor.tokenizer)
    inputs = processor(images=PHOTO, text="Question: what is this? Answer:", return_tensors="pt")
    for kwargs in ({"num_beams": 1}, {"do_sample": True, "top_p": 0.9}):
        torch.manual_seed(0)
        out = model.generate(**inputs, max_new_tokens=8, **kwargs)
        assert int(out.max()) < len(processor.tokenizer), kwargs
