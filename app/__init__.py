"""The deployable nowgate service: the gateway from settings and `policies/`, the demo handlers.

The library is `nowgate` (src/nowgate); this package is what a team's own FastAPI project
looks like when it runs the gateway: `uvicorn app.main:app`, or `nowgate serve`.
"""
