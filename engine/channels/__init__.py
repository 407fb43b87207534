"""Channel kinds: one module each (tcp_listen, tcp_connect, memory).

Inbound channels (``Listener``) serve connections and hand each received
chunk's frames to a handler; outbound channels (``Connector``) carry requests
to a counterpart.  See ``engine/channels/base.py`` for both contracts.
"""
