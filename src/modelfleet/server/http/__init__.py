"""The control API over HTTP: routes per resource, OpenAPI, views, replica logs."""
