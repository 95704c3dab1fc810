"""`make bench-inbox`: the in-app inbox service under load against a floor measured in the same run.

A benchmark, not a test. The floor is a bare Starlette handler running the service's own feed
query through the same driver and pool, served by uvicorn with the same settings, so "service /
floor" reads as what the service's logic costs on this machine today, whatever its speed.
"""
