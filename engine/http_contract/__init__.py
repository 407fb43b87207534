"""The contract of the ``http listen`` channels as OpenAPI 3.1 (``bsp docs openapi``): ``document`` assembles
it, ``fields`` reads the request fields a route reads, ``replies`` the bodies it answers, ``responses`` the
statuses the channel gives."""
