"""Pure descriptions of pluggable components (channels, formats, steps).

A component module holds its ``ComponentSpec`` (options, docs, examples) and
its constructor side by side.  The engine's ``Registry`` collects them; the
checker in ``dsl`` reads only the specs (it is handed the registry, it never
imports ``engine``).  This module is data only: no trio, no engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

# Option value types the checker knows how to validate.
OPTION_TYPES = (
    "string",    # "text"
    "int",       # 42
    "decimal",   # 1.50
    "bool",      # true / false
    "duration",  # 3s, 200ms (seconds as Decimal in the IR)
    "ident",     # a bare word, e.g. framing = length2
    "format",    # name of a declared format
    "channel",   # name of a declared channel
    "table",     # name of a declared table
    "path",      # "relative/file" resolved against the declaring file
    "expr",      # any expression, compiled by dsl
    "list",      # [a, b, c]
    "any",
)


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type: str
    doc: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] | None = None   # for ident / string enums
    # names a secret (a key or token file): a path need not exist for `bsp check`, and the file is
    # never read into the configuration's versioned sources (engine/ops/files.py)
    secret: bool = False
    # a "path" option that may name a configuration folder (an XSD set): the files of it the component
    # reads (a glob, searched recursively), the ones versioned with the configuration (engine/ops/files.py)
    # and counted against formats.versioned.MAX_DIR_FILES (bsp check E132); None: every file
    folder_files: str | None = None

    def __post_init__(self) -> None:
        if self.type not in OPTION_TYPES:
            raise ValueError(f"option {self.name!r}: unknown type {self.type!r}; expected one of {OPTION_TYPES}")


@dataclass(frozen=True)
class FieldKind:
    """What a format's description fixes about one field's values, for ``bsp check`` E103 (route tests).

    ``type``: what the decoder gives (``string``, ``integer`` or ``decimal``): a test that expects a value of
    the other kind (a number for a text field) expects what can never be.  ``declared``: how the format
    declares the field, said in the message (``ISO 8583 type n, 12 digits``).  ``digits``: a text of digits
    only (an ISO 8583 ``n`` field), ``pad`` wide when fixed: the help writes a number as those digits,
    zero-padded as they are on the wire.  ``sends``: the kinds the encoder takes in a ``given`` body
    (an ISO 8583 ``n`` field takes an integer too, zero-padded); empty: the encoder converts any value, so a
    ``given`` value is not checked.
    """
    type: str
    declared: str = ""
    digits: bool = False
    pad: int = 0
    sends: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BodyProblem:
    """What a format's ``body_check`` says of one line of a message body (``bsp check``).

    ``kind``: ``unknown`` (the path names no field: E061), ``index`` (past a table's end: E112) or
    ``misfit`` (the literal cannot be encoded in the field: E112).  ``index``: the part of the path it is about.  ``message`` / ``hint``: the
    diagnostic's words; ``names``: the fields known where the path went wrong (for did-you-mean).
    """
    kind: str
    index: int
    message: str
    hint: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepDecl:
    """What a step kind's ``check`` hook sees of one step in a route (``bsp check``), pure data.

    ``options``: each option the step gives -> its literal value (text, int, Decimal, bool), or None when it
    is an expression; ``names``: the options given as a bare name (``list = sanctions``) -> that name;
    ``exprs``: every option given (-> its expression); ``pos``: option -> its place (``.file .line .col``);
    ``tables``: the tables the route can read, name -> absolute path of the table's file.
    """
    kind: str
    name: str | None
    options: Mapping[str, Any]
    names: Mapping[str, str]
    exprs: Mapping[str, Any]
    pos: Mapping[str, Any]
    tables: Mapping[str, str]


@dataclass(frozen=True)
class ComponentSpec:
    """One kind of channel, format or step.

    ``category``: "channel", "format" or "step".
    ``name``: the kind as written in a route file, words joined by dots
      ("tcp.listen", "json", "copybook", "call").
    ``build``: the constructor; its signature depends on the category and is
      only called by the engine (or by formats' own loaders).
    ``check``: optional pure hook ``check(decl, base_dir) -> list[SpecError]``
      run by ``bsp check`` to report bad copybooks, specs and the like.  A step kind's hook is handed a
      ``StepDecl`` (its options as written, the tables in scope) once its options' names are fine; each
      ``SpecError`` is reported as E122 at its ``path:line:col`` (a list file's line), else at its option.
    ``fields``: optional pure hook ``fields(decl, base_dir) -> list[str] | None``
      naming the top-level fields a format decodes to (for "did you mean").
    ``field_types``: optional pure hook ``field_types(decl, base_dir) -> dict[str, str] | None``
      naming the type a top-level field decodes to (``string``, ``integer``, ``decimal``), for the
      fields whose type is fixed by the format's description (a copybook's PIC): ``bsp check`` tells a
      route test that expects text of a number, or a number of text (E103).
    ``field_kind``: optional pure hook ``field_kind(decl, base_dir, parts) -> FieldKind | None`` for the
      field at a path (``parts``: names and list indexes, ``("block4", 2, "value", "amount")``) where the
      format's description fixes its kind (an ISO 8583 spec's types, an ISO 20022 XSD, SWIFT's typed
      fields): ``bsp check`` tells a route test that expects, or sends, a value of the other kind (E103).
    ``body_check``: optional pure hook ``body_check(decl, base_dir) -> Callable | None`` of a format whose
      description is a tree of typed fields (a copybook): the callable takes a body line's path (``parts``)
      and, when the line's value is a literal, that value, and returns a ``BodyProblem`` or None.
      ``bsp check`` reports a path naming no field at any depth (E061) and a literal the field cannot hold
      (E112), which would otherwise fail the exchange when it is encoded (code 96).  When the callable has
      a ``missing(paths)`` method (a copybook's), ``bsp check`` hands it the paths a ``call`` body sets and
      warns (W015) of the fields it returns: left out, they are sent as LOW-VALUES or spaces.
    ``required``: optional pure hook ``required(decl, base_dir) -> list[str] | None``
      naming the top-level fields every message of the format must have (a JSON
      Schema's ``required``): ``bsp check`` reports a message body without them (E076).
    ``classification``: optional pure hook ``classification(decl, base_dir) -> dict[str, str] | None``
      of a format kind whose fields are classified in a file it reads (an ISO 8583 network spec):
      ``{path: tag}`` as ``formats.classify.tags_of`` gives it at run time, or None when it cannot
      tell.  ``bsp check`` warns (W006) when a classified value is copied into a field that is not
      classified as strongly; field blocks and the ``classify`` option need no hook.
    ``side_effects``: a step kind that sends or books something outside bsp (a plugin posting to a
      system of its own): a route with a deal key checks the key, and logs the deal as accepted,
      before the first such step, as it does before a ``call``, so that a repeat never runs it twice.
    ``check_receive``: optional pure hook of a channel kind,
      ``check_receive(channel_decl, format_decl) -> str | None``: why a route
      cannot receive from this channel as that format (``bsp check`` E039), or None.
    ``call_names``: optional pure hook of a channel kind, ``call_names(channel_decl) -> list[str]``:
      the values each call to it gives in its ``name { word = ... }`` clause (a ``file write``'s
      ``{word}`` name fields); ``bsp check`` makes every call give exactly those (E104, E105).  A kind
      without the hook takes no ``name { }``.
    """

    category: str
    name: str
    doc: str
    options: tuple[OptionSpec, ...] = ()
    build: Callable[..., Any] | None = None
    check: Callable[..., Any] | None = None
    fields: Callable[..., Any] | None = None
    examples: tuple[str, ...] = ()
    positional: str | None = None   # option filled by a positional argument, e.g. `json schema "x"` / `copybook "X.cpy"`
    accepts_fields: bool = False     # a `{ field ... }` block of field declarations is allowed (fixed, csv)
    provides: tuple[str, ...] = ()   # extra names a channel puts in its routes' scope (e.g. "http", "header")
    # the fields of such a name, when they are fixed (``file`` of a file watch: name, line ...): the
    # checker refuses any other (E060)
    provides_fields: Mapping[str, tuple[str, ...]] | None = None
    check_receive: Callable[..., Any] | None = None
    required: Callable[..., Any] | None = None
    field_types: Callable[..., Any] | None = None
    field_kind: Callable[..., Any] | None = None
    body_check: Callable[..., Any] | None = None
    classification: Callable[..., Any] | None = None
    side_effects: bool = False       # a step kind: see above
    # a step kind that takes any option name (``record NAME { policy = ..  commission = .. }``: the route's own
    # values); its ``options`` then list none, and ``bsp check`` refuses no name (no E043)
    open_options: bool = False
    call_names: Callable[..., Any] | None = None

    def option(self, name: str) -> OptionSpec | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)
