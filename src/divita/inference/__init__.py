"""Inference: the genres of any trailer file from a trained checkpoint."""
