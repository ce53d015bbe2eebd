"""The miniature digits world: data, captions and the recipes that train its models.

Training code lives here and is never imported by the evaluation path; evaluation loads the shipped
weights through :mod:`memora_bench.world.store`.
"""
