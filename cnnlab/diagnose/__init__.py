"""Why is my model stuck? The model linter, the run doctor, the learning-rate finder and the sanity check."""
