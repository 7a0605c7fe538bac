"""Decoding and the model's masks: greedy takes the likeliest word each step, beam search finds the likelier
caption greedy misses, and no position ever sees a later word."""
import math

import pytest
import torch

from vlsteps.captioner import decode, metrics, model
from vlsteps.captioner.data import Vocabulary

VOCAB = Vocabulary(["a", "b", "c", "x1", "x2", "x3", "x4", "x5"])
A, B, C, X = VOCAB.index["a"], VOCAB.index["b"], VOCAB.index["c"], [VOCAB.index[f"x{i}"] for i in range(1, 6)]


class Myopic(torch.nn.Module):
    """A hand-made 'model': first word a (0.55) or b (0.45); after a, x1 (0.3) or x2..x5 (0.175 each) then <end>;
    after b, c then <end> for sure. Greedy says 'a x1' (p = 0.165); the best caption is 'b c' (p = 0.45)."""
    seq_length = 8

    def encode(self, images):
        return torch.zeros(len(images), 1, 1)

    def decoder(self, ids, memory):
        logits = torch.full((len(ids), ids.shape[1], len(VOCAB)), -1e9)
        for row, seq in enumerate(ids.tolist()):
            last = seq[-1]
            probs = ({A: 0.55, B: 0.45} if last == VOCAB.start
                     else {x: 0.3 if x == X[0] else 0.175 for x in X} if last == A
                     else {C: 1.0} if last == B else {VOCAB.end: 1.0})
            for word, p in probs.items():
                logits[row, -1, word] = math.log(p)
        return logits


def test_greedy_takes_the_likeliest_word_and_beam_search_the_likeliest_caption():
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    assert decode.greedy(Myopic(), images, VOCAB) == ["a x1", "a x1"]
    assert decode.beam(Myopic(), images, VOCAB, beam_size=2) == ["b c", "b c"]
    assert decode.beam(Myopic(), images, VOCAB, beam_size=1) == ["a x1", "a x1"]   # a beam of one is greedy


def small_model(vocab_size=12):
    torch.manual_seed(0)
    return model.Captioner(vocab_size, "cnn", seq_length=10, embed_dim=32, ff_dim=64).eval()


def test_no_position_sees_a_later_word():
    net = small_model()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    ids = torch.randint(4, 12, (2, 7))
    changed = ids.clone()
    changed[:, 4:] = torch.randint(4, 12, (2, 3))
    with torch.no_grad():
        before, after = net(images, ids), net(images, changed)
    assert torch.allclose(before[:, :4], after[:, :4], atol=1e-5)        # what came before is untouched
    assert not torch.allclose(before[:, 4:], after[:, 4:])
    mask = model.causal_mask(4)
    assert mask.tolist() == [[False, True, True, True], [False, False, True, True],
                             [False, False, False, True], [False, False, False, False]]


def test_shapes_through_the_model_and_the_beam_of_a_real_network():
    net = small_model()
    images = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    memory = net.encode(images)
    assert memory.shape == (3, 16, 32)                                   # a 4x4 grid of image tokens
    assert net(images, torch.ones(3, 5, dtype=torch.long)).shape == (3, 5, 12)
    vocab = Vocabulary([f"w{i}" for i in range(8)])
    assert decode.beam(net, images, vocab, beam_size=1) == decode.greedy(net, images, vocab)
    assert all(len(c.split()) <= net.seq_length - 1 for c in decode.beam(net, images, vocab, beam_size=3))


def test_the_loss_and_accuracy_ignore_padding():
    logits = torch.zeros(1, 3, 5)
    logits[0, 0, 2] = logits[0, 1, 3] = logits[0, 2, 1] = 10.0
    targets = torch.tensor([[2, 4, 0]])                                  # right, wrong, padding
    assert metrics.masked_accuracy(logits, targets) == (1, 2)
    padded_wrong = logits.clone()
    padded_wrong[0, 2] = 0.0
    assert torch.isclose(metrics.masked_loss(logits, targets), metrics.masked_loss(padded_wrong, targets))


def test_scores_reward_the_right_caption():
    refs = [["a small red circle", "a red circle"], ["a large blue square left of a small green circle"]]
    right = metrics.caption_scores(["a small red circle", "a large blue square left of a small green circle"], refs)
    wrong = metrics.caption_scores(["a large blue square", "a small red circle"], refs)
    assert right["BLEU-4"] > 0.9 and right["CIDEr"] > wrong["CIDEr"] and wrong["BLEU-4"] < 0.3
    assert metrics.exact_match(["a red circle", "a large blue square"], refs) == 0.5
    assert metrics.caption_scores(["", ""], refs)["BLEU-4"] == pytest.approx(0.0, abs=1e-6)
