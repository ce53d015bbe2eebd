"""Classifiers: images in, scores out. Thresholds come from the task card, never from here."""
