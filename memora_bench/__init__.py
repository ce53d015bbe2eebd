"""memora-bench: is the concept an unlearning method erased really gone?"""

__version__ = "0.1.0"
