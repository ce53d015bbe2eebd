"""Classifier guidance on the miniature world: the digit classifier's log-probability of "seven" after a
10-step guided noisy DDIM on the retrain oracle (which never learned the seven), for a range of scales.
Session 21: 0 -11.1, 0.1 -9.2, 0.3 -1.2 (3 of 4 images sevens), 1 -10.8, 3 -26.4, 10 -28.1 (every image an
eight): the scale that helps is small here; larger ones overshoot. Run: .venv/bin/python THIS_FILE."""
import torch
from memora_bench.classifiers.registry import load_classifier
from memora_bench.miniworld import load_pipeline
from memora_bench.models.generate import encode_prompts
from memora_bench.models.trajectory import classifier_guide, ddim_steps, image_generators, initial_noise, latent_shape, sampler
pipe = load_pipeline("oracle"); clf = load_classifier("mini-digit"); j = clf.labels.index("seven")
sched = sampler(pipe, 10); seeds=[1,2,3,4]
cond, uncond = encode_prompts(pipe, ["a handwritten digit"]*4), encode_prompts(pipe, [""]*16)[:1]
for scale in [0, 0.1, 0.3, 1, 3, 10]:
    gens = image_generators(seeds); x = initial_noise(gens, latent_shape(pipe, 32, 32))
    guide = classifier_guide(pipe, lambda im: clf.log_probs(im)[:, j], [scale]*4)
    out = ddim_steps(pipe.unet, sched, x, cond, uncond, 7.5, eta=1.0, gens=gens, guide=guide)
    with torch.no_grad():
        im = (pipe.vae.decode(out / pipe.vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
        lp = clf.log_probs(im)
    print(scale, lp[:, j].mean().item(), lp.argmax(1).tolist())
