"""DARTS: search space, supernet, architecture search, discretisation, evaluation network.

One concept per module (`ops`, `genotype`, `supernet`, `discretize`, `architect`, `step`,
`searcher`, `network`); import them directly. This package import pulls in nothing.
"""
