"""The `line connect` channel: one request per line, one reply per line, over one TCP connection."""
import trio

from engine.channels.base import CallTimeout, ConnectionLost, Unreachable
from engine.channels.options import ChannelConfigError, built_check, parse_address
from formats.component import ComponentSpec, OptionSpec


class LineConnect:
    role = "connect"

    def __init__(self, name, options):
        self.name = name
        self.host, self.port = parse_address(name, options.get("address"))
        self.address = f"{self.host}:{self.port}"
        self.timeout = float(options.get("timeout") or 5)
        if self.timeout <= 0:
            raise ChannelConfigError(f"channel {name}: option timeout: must be more than 0s")
        self._stream = None
        self._buf = b""
        self._lock = trio.Lock()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await trio.sleep_forever()

    async def _close(self):
        if self._stream is not None:
            stream, self._stream, self._buf = self._stream, None, b""
            await stream.aclose()

    async def _one(self, payload, timeout):
        if b"\n" in payload:
            return Unreachable("request holds a line feed: not sent", channel=self.name)
        if self._stream is None:
            try:
                self._stream = await trio.open_tcp_stream(self.host, self.port)
            except OSError as exc:
                return Unreachable(f"cannot connect to {self.address}: {exc}", channel=self.name)
        try:
            await self._stream.send_all(payload + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            await self._close()
            return ConnectionLost(f"{self.address}: connection broke while sending: {exc}", channel=self.name)
        with trio.move_on_after(timeout) as scope:
            while b"\n" not in self._buf:
                try:
                    chunk = await self._stream.receive_some(65536)
                except (trio.BrokenResourceError, OSError) as exc:
                    await self._close()
                    return ConnectionLost(f"{self.address}: connection broke: {exc}", channel=self.name)
                if not chunk:
                    await self._close()
                    return ConnectionLost(f"{self.address} closed the connection before it answered",
                                          channel=self.name)
                self._buf += chunk
        if scope.cancelled_caught:
            await self._close()          # a late answer would be read as the next request's
            return CallTimeout(f"no answer from {self.address} within {timeout:g}s", channel=self.name)
        line, _, self._buf = self._buf.partition(b"\n")
        return line.rstrip(b"\r")

    async def request_many(self, payloads, timeout):
        timeout = self.timeout if timeout is None else timeout
        out = []
        async with self._lock:
            for payload in payloads:
                out.append(await self._one(payload, timeout))
        return out


def build(decl):
    return LineConnect(decl.name, dict(decl.options))


COMPONENT = ComponentSpec(
    category="channel",
    name="line.connect",
    doc="Calls a counterpart that reads one request per line and answers one line per request (TCP).",
    options=(OptionSpec("address", "string", "host:port of the counterpart.", required=True),
             OptionSpec("timeout", "duration", "How long to wait for an answer.", default="5s")),
    build=build,
    check=built_check(LineConnect),
    examples=('channel core = line connect {\n    address = "127.0.0.1:7401"\n}',),
)
