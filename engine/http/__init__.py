"""HTTP/1.1 on trio streams with h11: server, router, request/response, problem details.

    from engine.http import Router, Response, serve_http
    router = Router()

    @router.route("GET", "/deals/{id}")
    async def deal(request):
        return Response.json({"id": request.path_params["id"]})

    port = await nursery.start(serve_http, router, "127.0.0.1", 0)
"""
from engine.http.messages import HTTPError, Request, Response, dump_json
from engine.http.router import RouteError, Router
from engine.http.server import HTTPLimits, serve_connection, serve_http

__all__ = ["HTTPError", "HTTPLimits", "Request", "Response", "RouteError", "Router", "dump_json",
           "serve_connection", "serve_http"]
