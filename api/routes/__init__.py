"""One router per resource, gathered by `api.app.create_app`."""
