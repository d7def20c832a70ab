"""Rescue: take a stuck model and let the doctor act — fix, try, keep what helps — within a compute budget."""
