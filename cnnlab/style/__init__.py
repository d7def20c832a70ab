"""Style transfer: loss networks (lossnet.py), Gatys optimisation (gatys.py), fast feed-forward nets (fast.py)."""
