"""`repairctl`: the command-line tool (offline repair, admin, and HTTP client commands)."""
