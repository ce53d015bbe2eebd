"""Model loading, generation, inversion and LoRA: the one narrow interface the probes use."""
