"""The `udp listen` channel: each datagram is one request; the reply goes back to its sender."""
import itertools

import trio

from engine.channels.base import ConnInfo
from engine.channels.options import built_check, parse_address
from formats.component import ComponentSpec, OptionSpec

_NUMBERS = itertools.count(1)


class UdpListen:
    role = "listen"          # receives requests; "connect" makes calls (request_many), "both" either

    def __init__(self, name, options):
        self.name = name
        self.host, self.port = parse_address(name, options.get("address"))   # ChannelConfigError if bad
        self.address = f"{self.host}:{self.port}"
        self._stop = trio.Event()

    async def serve(self, handler, *, task_status=trio.TASK_STATUS_IGNORED):
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.bind((self.host, self.port))            # an OSError here: bsp run names the channel
            self.port = sock.getsockname()[1]                  # port 0: the one the OS chose
            self.address = f"{self.host}:{self.port}"
            task_status.started()                              # listening: bsp run goes on
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read, sock, handler)
                await self._stop.wait()                        # drain: stop reading
                nursery.cancel_scope.cancel()

    async def _read(self, sock, handler):
        while True:
            data, peer = await sock.recvfrom(65536)
            conn = ConnInfo(channel=self.name, peer=f"{peer[0]}:{peer[1]}", number=next(_NUMBERS))
            (reply,) = await handler.handle(conn, [data])      # one reply (or None) per frame, once recorded
            if reply is not None:
                await sock.sendto(reply, peer)

    def stop_accepting(self):
        self._stop.set()


def build(decl):
    return UdpListen(decl.name, dict(decl.options))


COMPONENT = ComponentSpec(
    category="channel",
    name="udp.listen",
    doc="Receives each datagram as one request and answers it to its sender.",
    options=(OptionSpec("address", "string", "host:port to listen on (port 0: any free port).", required=True),),
    build=build,
    check=built_check(UdpListen),
    examples=('channel teller = udp listen {\n    address = "127.0.0.1:7301"\n}',),
)
