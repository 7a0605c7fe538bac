"""Repository tools: the notebook runner, the README generator, the benchmarks and the full-size dry runs.

Nothing here is imported by a notebook; `vlsteps` itself holds only what the notebooks and the service use.
"""
