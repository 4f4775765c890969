"""CF-DARTS model repair as a plain PyTorch library: no web, no database, no Celery.

Import the stage modules directly (e.g. `repair_core.search`, `repair_core.selection`);
this package's import stays cheap and pulls in nothing but the standard library.
"""

__version__ = "0.1.0"
