"""The static leaderboard: ``memora-bench leaderboard RESULTS... --out DIR``.

Rows are built and sorted in Python (:mod:`memora_bench.leaderboard.rows`) from result files only, with the
numbers the results hold (counts, intervals, scores computed by :mod:`memora_bench.scoring` during
``evaluate``); the jinja2 templates only loop over them (autoescape on). The site is plain HTML, CSS and a
few lines of vanilla JS: it opens from ``file://`` and makes no network request.
"""
