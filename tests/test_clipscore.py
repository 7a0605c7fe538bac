"""CLIPScore = 2.5 * max(cos, 0), one score per (image, caption) pair, whatever the vectors' lengths."""
import numpy as np
import pytest

from vlsteps.clipscore import W, clip_score, clip_score_from_embeddings


def test_known_angles():
    image = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    text = np.array([[1.0, 0.0],                       # same direction: cos 1
                     [0.5, np.sqrt(3) / 2],            # 60 degrees: cos 0.5
                     [0.0, 1.0],                       # orthogonal: cos 0
                     [-1.0, 0.0]])                     # opposite: cos -1, clamped
    np.testing.assert_allclose(clip_score_from_embeddings(image, text), [2.5, 1.25, 0.0, 0.0], atol=1e-6)


def test_weight_is_2_5_and_can_be_changed():
    assert W == 2.5
    v = np.array([0.6, 0.8])
    assert clip_score_from_embeddings(v, v, w=1.0)[0] == pytest.approx(1.0)


def test_lengths_do_not_matter_and_zero_vectors_score_zero():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    scaled = clip_score_from_embeddings(a * 7.0, b * 0.01)
    np.testing.assert_allclose(scaled, 2.5 * np.maximum(cos, 0), atol=1e-6)
    assert clip_score_from_embeddings(np.zeros(8), b[0])[0] == 0.0


def test_pairs_row_by_row_not_all_against_all():
    image = np.eye(3)
    text = np.eye(3)[[0, 2, 1]]                  # only the first pair matches
    np.testing.assert_allclose(clip_score_from_embeddings(image, text), [2.5, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("image,text", [(np.ones((2, 4)), np.ones((3, 4))), (np.ones((2, 4)), np.ones((2, 5))),
                                        (np.ones((2, 2, 2)), np.ones((2, 2, 2))),
                                        (np.array([np.nan, 1.0]), np.array([1.0, 1.0]))])
def test_bad_shapes_and_values_are_refused(image, text):
    with pytest.raises(ValueError):
        clip_score_from_embeddings(image, text)


class FakeEmbedder:
    """Stands in for ClipEmbedder: fixed vectors per image/caption."""
    def __init__(self, vectors):
        self.vectors = vectors

    def images(self, images):
        return np.stack([self.vectors[i] for i in images])

    def texts(self, texts):
        assert isinstance(texts, list)
        return np.stack([self.vectors[t] for t in texts])


def test_clip_score_uses_the_embedder_pairwise():
    emb = FakeEmbedder({"cat.png": np.array([1.0, 0.0]), "dog.png": np.array([0.0, 1.0]),
                        "a cat": np.array([1.0, 1.0]), "a dog": np.array([0.0, 3.0])})
    scores = clip_score(emb, ["cat.png", "dog.png"], ["a cat", "a dog"])
    np.testing.assert_allclose(scores, [2.5 / np.sqrt(2), 2.5], atol=1e-6)
    assert clip_score(emb, [], []).shape == (0,)
    with pytest.raises(ValueError, match="one caption per image"):
        clip_score(emb, ["cat.png"], ["a cat", "a dog"])
    with pytest.raises(TypeError):
        clip_score(emb, ["cat.png"], [None])
    with pytest.raises(TypeError, match="wrap a single caption"):   # not scored letter by letter
        clip_score(emb, ["cat.png", "dog.png", "cat.png", "dog.png", "cat.png"], "a cat")
