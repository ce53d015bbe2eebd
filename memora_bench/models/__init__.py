"""Model loading, generation, inversion and LoRA: the one narrow interface the probes use."""

import threading

# Held while building modules or drawing from torch's global generator, by every thread: diffusers' loading
# patches parameter registration process-wide (accelerate's init_empty_weights puts new parameters on the
# meta device), and peft initialises adapters from the global generator. Jobs that run side by side
# (memora_bench.runner.side_by_side) would otherwise get meta-device adapters or each other's random draws.
BUILD_LOCK = threading.RLock()
