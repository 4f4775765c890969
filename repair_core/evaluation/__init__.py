"""Stage 4, evaluation: scoring (`accuracy`, `scoring`), the report (`report`), its plots (`plot`).

Import the modules directly. This package import pulls in nothing, so reading a report
(`evaluation.report`, plain Python) or drawing it (`evaluation.plot`) never loads torch.
"""
