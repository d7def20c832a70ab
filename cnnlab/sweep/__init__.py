"""Hyperparameter sweeps with Optuna: spec.py (the sweep file), runner.py (trials as runs), report.py."""
