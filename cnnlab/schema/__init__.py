"""One schema for every front-end: the model language (layers.py) and the training config (config.py)."""
