from repairctl.main import app

app()
