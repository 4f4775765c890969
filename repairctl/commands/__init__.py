"""`repairctl` sub-commands; each module holds one typer sub-app."""
