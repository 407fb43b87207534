"""Kinds that load fine and go wrong when used."""
import trio

from formats.component import ComponentSpec, OptionSpec


def _explode(step, ctx, route):
    from engine.steps.base import FunctionStep

    def run(values, scope):
        raise RuntimeError("the ledger of the wreck is on fire")
    return FunctionStep(step, ctx, run)


def _leak(step, ctx, route):
    """Raises an exception whose text quotes the card number it was given (a careless plugin)."""
    from engine.steps.base import FunctionStep

    def run(values, scope):
        raise RuntimeError(f"the core refused card {values['card']}")
    return FunctionStep(step, ctx, run)


def _stall(step, ctx, route):
    """Books (appends the ref to the file ``mark``), then, the first time, hangs: the event loop is
    blocked while it runs (a test SIGKILLs the engine there)."""
    import time
    from pathlib import Path

    from engine.steps.base import FunctionStep

    def run(values, scope):
        mark = Path(str(values["mark"]))
        with mark.open("a") as f:
            f.write(f"{values['ref']}\n")
        if len(mark.read_text().splitlines()) == 1:
            time.sleep(120)
        return "booked"
    return FunctionStep(step, ctx, run)


def _misfire(step, ctx, route):
    """Acts outside bsp (side_effects) and raises on every message: its deals fail in doubt."""
    from engine.steps.base import FunctionStep

    def run(values, scope):
        raise ConnectionResetError("the wreck's booking desk hung up mid-booking")
    return FunctionStep(step, ctx, run)


def _picky(step, ctx, route):
    raise RuntimeError("picky needs a mode it cannot find")


class _Flaky:
    """Listens, then its serve() raises once the first datagram arrives."""
    role = "listen"

    def __init__(self, decl):
        self.name = decl.name
        self.address = "127.0.0.1:0"
        self.port = None
        self._stop = trio.Event()

    async def serve(self, handler, *, task_status=trio.TASK_STATUS_IGNORED):
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            self.address = f"127.0.0.1:{self.port}"
            task_status.started()
            await sock.recvfrom(100)
            raise RuntimeError("flaky lost its socket")

    def stop_accepting(self):
        self._stop.set()


class _Stubborn:
    """serve() raises before it has started."""
    role = "listen"

    def __init__(self, decl):
        self.name = decl.name
        self.address = "nowhere"

    async def serve(self, handler, *, task_status=trio.TASK_STATUS_IGNORED):
        raise RuntimeError("stubborn will not start")

    def stop_accepting(self):
        pass


class _Liar:
    """A call target that breaks request_many's contract: ``mode`` raise (it raises), short (fewer
    results than requests), text (a str instead of bytes), else the request echoed back (good)."""
    role = "connect"

    def __init__(self, decl):
        self.name = decl.name
        self.address = "127.0.0.1:0"
        self.mode = decl.options.get("mode")

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await trio.sleep_forever()

    async def request_many(self, payloads, timeout):
        if self.mode == "raise":
            raise RuntimeError("liar lost its socket table")
        if self.mode == "short":
            return []
        if self.mode == "text":
            return [p.decode() for p in payloads]
        return list(payloads)


class _Clumsy:
    name = "clumsy"

    def decode(self, data):
        return {"op": "x"}

    def encode(self, values):
        return values["missing"]             # a KeyError: a bug, not a FormatError


def _fragile_check(decl):
    return decl.options["schema"].errors        # a bug: there is no such option


def _touchy_check(decl):
    return [] if decl.options["address"] else []   # a bug: a KeyError when address is left out


def _fussy(decl):
    raise KeyError("fussy wants an option nobody declared")


class _Crashy:
    name = "crashy"

    def decode(self, data):
        return {"x": {}["missing"]}          # a KeyError: a bug, not a FormatError

    def encode(self, values):
        return b"{}"


class _Strange:
    """decode returns values a message cannot hold: an object with no JSON form, a float amount."""
    name = "strange"

    def decode(self, data):
        from decimal import Decimal
        if data == b"object":
            return {"ref": "S1", "legs": [{"amount": Decimal("1.00")}, {"handle": object()}]}
        if data == b"float":
            return {"ref": "S2", "amount": 10.25}
        return {"ref": data.decode(), "amount": Decimal("1.00")}

    def encode(self, values):
        return b"%s;%s" % (str(values.get("code")).encode(), str(values.get("text")).encode())


COMPONENTS = (
    ComponentSpec(category="step", name="explode", doc="Raises at run time.", build=_explode,
                  options=(OptionSpec("why", "expr", "Why."),)),
    ComponentSpec(category="step", name="leak", doc="Raises quoting a card number.", build=_leak,
                  options=(OptionSpec("card", "expr", "A card number."),)),
    ComponentSpec(category="step", name="stall", doc="Books, then hangs the first time.", build=_stall,
                  options=(OptionSpec("ref", "expr", "The reference."), OptionSpec("mark", "expr", "A file.")),
                  side_effects=True),
    ComponentSpec(category="step", name="misfire", doc="Acts outside bsp, raises every time.", build=_misfire,
                  options=(OptionSpec("ref", "expr", "The reference."),), side_effects=True),
    ComponentSpec(category="step", name="picky", doc="Its constructor raises.", build=_picky,
                  options=(OptionSpec("mode", "expr", "The mode."),)),
    ComponentSpec(category="channel", name="flaky.listen", doc="serve() raises after start.",
                  build=lambda decl: _Flaky(decl)),
    ComponentSpec(category="channel", name="liar.connect", doc="request_many breaks its contract.",
                  build=lambda decl: _Liar(decl), options=(OptionSpec("mode", "string", "How it lies."),)),
    ComponentSpec(category="format", name="clumsy", doc="encode raises KeyError.", build=lambda decl: _Clumsy()),
    ComponentSpec(category="format", name="fragile", doc="Its check hook raises.", build=lambda decl: _Crashy(),
                  check=_fragile_check),
    ComponentSpec(category="channel", name="touchy", doc="Its check hook raises.", build=lambda decl: _Liar(decl),
                  check=_touchy_check, options=(OptionSpec("address", "string", "Where."),)),
    ComponentSpec(category="channel", name="fussy", doc="Its constructor raises.", build=_fussy),
    ComponentSpec(category="channel", name="stubborn", doc="serve() raises before it starts.",
                  build=lambda decl: _Stubborn(decl)),
    ComponentSpec(category="format", name="crashy", doc="decode raises KeyError.", build=lambda decl: _Crashy()),
    ComponentSpec(category="format", name="strange", doc="decode returns values with no JSON form, floats.",
                  build=lambda decl: _Strange()),
)


def register(registry):
    for spec in COMPONENTS:
        registry.register(spec)
