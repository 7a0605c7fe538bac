"""Train your own image captioner: CNN features -> a Transformer encoder block -> a Transformer decoder.

    python -m vlsteps.captioner.train --data shapes        # learns for real on a CPU in minutes
    python -m vlsteps.captioner.train --data ~/flickr8k    # a folder of images plus a captions file

model.py (the network), data.py (photo folders or `vlsteps.world`'s scenes, splits by image, the
vocabulary), decode.py (greedy and beam search), metrics.py (masked accuracy, BLEU-4, CIDEr, exact match),
runs.py (the run folder), train.py (the loop and its flags), predict.py (caption one image), widget.py (demo).
"""
