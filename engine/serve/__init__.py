"""`engine serve`: the HTTP API lemond calls at load time (Starlette app in app, guards in limits, bodies and the
OpenAPI document in schemas, the uvicorn runner in runner)."""
