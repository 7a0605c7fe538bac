"""ClipEmbedder: batched, normalized float32 vectors that match the model's own features."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from vlsteps import sample_photos
from vlsteps.embed import ClipEmbedder, model_fingerprint


@pytest.fixture(scope="module")
def photos():
    return list(sample_photos().values())


def test_images_and_texts_are_unit_float32_rows(embedder, photos):
    img = embedder.images(photos)
    txt = embedder.texts(["a photo of a cat", "a cup of coffee", "x"])
    assert img.shape == (len(photos), embedder.dim) and txt.shape == (3, embedder.dim)
    assert img.dtype == np.float32 and txt.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1, atol=1e-5)
    assert embedder.images([]).shape == (0, embedder.dim) and embedder.texts([]).shape == (0, embedder.dim)


def test_same_as_the_model_called_directly(embedder, photos):
    model, processor = embedder.model, embedder.processor
    with torch.no_grad():
        feats = model.get_image_features(**processor(images=photos[:3], return_tensors="pt")).pooler_output
        tfeats = model.get_text_features(**processor.tokenizer(["a cat", "a dog"], padding=True,
                                                                return_tensors="pt")).pooler_output
    np.testing.assert_allclose(embedder.images(photos[:3]), torch.nn.functional.normalize(feats, dim=-1).numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(embedder.texts(["a cat", "a dog"]),
                               torch.nn.functional.normalize(tfeats, dim=-1).numpy(), atol=1e-5)


def test_batch_size_prefetch_and_input_kind_do_not_change_results(clip_path, embedder, photos, tmp_path):
    paths = []
    for i, im in enumerate(photos):
        paths.append(tmp_path / f"{i}.png")
        im.save(paths[-1])
    ref = embedder.images(photos)
    one = ClipEmbedder(embedder.model, embedder.processor, batch_size=1, prefetch=False)
    np.testing.assert_allclose(one.images(photos), ref, atol=1e-5)
    np.testing.assert_allclose(embedder.images([str(p) for p in paths]), ref, atol=1e-5)   # PNG is lossless
    assert not np.allclose(ref[0], ref[1], atol=1e-3)          # different photos, different vectors


def test_prompt_ensemble_is_the_normalized_mean(embedder):
    templates = ["a photo of a {}.", "a sketch of a {}."]
    ens = embedder.prompt_ensemble(["cat", "dog"], templates)
    manual = embedder.texts(["a photo of a cat.", "a sketch of a cat."]).mean(axis=0)
    np.testing.assert_allclose(ens[0], manual / np.linalg.norm(manual), atol=1e-5)
    assert ens.shape == (2, embedder.dim)
    with pytest.raises(ValueError, match="template"):
        embedder.prompt_ensemble(["cat"], ["no placeholder"])


def test_a_single_string_is_refused(embedder):
    with pytest.raises(TypeError, match=r"\[query\]"):
        embedder.texts("a photo of a cat")


def test_fingerprint_follows_the_architecture_and_weights_not_the_dtype(clip_path, embedder, tmp_path):
    from transformers import CLIPModel
    for dtype in (torch.float16, torch.bfloat16):
        assert model_fingerprint(CLIPModel.from_pretrained(clip_path, dtype=dtype)) == embedder.fingerprint
    cfg = CLIPModel.from_pretrained(clip_path).config
    seeded = {}
    for seed in (1, 2):                                   # two stand-ins: same config, other weights
        torch.manual_seed(seed)
        seeded[seed] = CLIPModel(cfg).eval()
    prints = {seed: model_fingerprint(m) for seed, m in seeded.items()}
    assert len({embedder.fingerprint, *prints.values()}) == 3
    seeded[1].save_pretrained(tmp_path / "seed1")         # the same weights reloaded, at another dtype too
    for dtype in (torch.float32, torch.bfloat16):
        assert model_fingerprint(CLIPModel.from_pretrained(tmp_path / "seed1", dtype=dtype)) == prints[1]
    cfg.vision_config.num_hidden_layers = 1
    assert model_fingerprint(CLIPModel(cfg)) != embedder.fingerprint
    assert embedder.collection_tag == f"clip-{embedder.dim}d-{embedder.fingerprint}"


def test_missing_folder_says_how_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_models.sh clip"):
        ClipEmbedder.from_pretrained(tmp_path / "nope")


def test_bf16_model_still_gives_float32_unit_vectors(clip_path):
    emb = ClipEmbedder.from_pretrained(clip_path, device="cpu", dtype=torch.bfloat16)
    v = emb.images([Image.new("RGB", (300, 200), "red")])
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-3)


def test_draft_decodes_a_large_jpeg_smaller_but_never_below_the_models_size(embedder, photos):
    """The indexer's JPEG path (`Pixels(..., draft=True)`): libjpeg's reduced scales, shortest side kept at or above
    the model's resize, pixels within a small fraction of a grey level of the full decode; other files untouched."""
    from vlsteps.images import load_image
    big = io.BytesIO()
    photos[0].convert("RGB").resize((2000, 1500)).save(big, "JPEG", quality=90)
    size = embedder.preprocess._plain[0]
    drafted = load_image(big.getvalue(), draft=size)
    assert drafted.size == (500, 375) and min(drafted.size) >= size
    assert load_image(big.getvalue()).size == (2000, 1500)
    png = io.BytesIO()
    photos[0].convert("RGB").resize((2000, 1500)).save(png, "PNG")
    assert load_image(png.getvalue(), draft=size).size == (2000, 1500)
    full, fast = embedder.preprocess(big.getvalue()), embedder.preprocess(big.getvalue(), draft=True)
    assert full.shape == fast.shape
    assert 0 < (full - fast).abs().mean() < 0.02     # normalised units: one grey level is about 0.05
