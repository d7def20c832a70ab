"""Figures drawn from what a run wrote (metrics, predictions), never from the trainer's internals."""
