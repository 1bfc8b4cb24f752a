"""The REST API for integrations (``/api/v1/``): API tokens with scopes, endpoints over the
enrollment and recognition services, the OpenAPI schema and its documentation page."""
