"""Can the shipped digit classifier judge a mirrored digit? An image x shows "mirrored d" when its mirror image
is judged d (top-1, p >= 0.5) and x itself is not. Measured on the held-out real digits."""
import numpy as np
from memora_bench.digits import load_split
from memora_bench.classifiers.mini import load_digit

split = load_split()
clf = load_digit()
x, y = split.heldout_images, split.heldout_labels
def judged(imgs):
    p = clf.probs(imgs)
    return p.argmax(1), p.max(1)
a0, p0 = judged(x)
af, pf = judged(x[:, :, ::-1].copy())
for d in range(10):
    glyph = x[y == d][:, :, ::-1]  # real mirrored d
    ag, pg = judged(glyph)
    ab, pb = judged(glyph[:, :, ::-1].copy())
    recall = np.mean((ab == d) & (pb >= 0.5) & (ag != d))
    # false positives: real digits (not mirrored) passing the rule
    fp = np.mean((af == d) & (pf >= 0.5) & (a0 != d))
    fp_by = {k: round(float(np.mean(((af == d) & (pf >= 0.5) & (a0 != d))[y == k])), 3) for k in range(10) if np.mean(((af == d) & (pf >= 0.5) & (a0 != d))[y == k]) > 0.02}
    print(d, f"recall {recall:.3f}  mirrored-d judged as {np.bincount(ag, minlength=10)}  fp on real digits {fp:.3f} {fp_by}")
