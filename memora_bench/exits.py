"""Exit codes of every ``memora-bench`` command (a leaf: imported by the CLI and every command handler).

0 success; 1 the command ran and found a failure (an evaluation error, a regression); 2 bad input (unknown
file, invalid card or manifest, bad arguments), or an unexpected error (one line naming the command's
inputs, never a traceback that a CI job would read as "regressed").
"""

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
