"""Reference unlearning recipes that turn the miniature base model into unlearned checkpoints.

Never imported by the evaluation path.
"""
