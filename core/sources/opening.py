"""Opening the sources a command names (``-s`` specs, ``--context``) and a kube context named
by a query's ``IN``. Sources are plugins found through the ``tessera.sources`` entry points
(core/sources/registry.py), so a third party can add one without touching core."""

from __future__ import annotations

from typing import Any, TextIO

from tessera.core.errors import UsageError


def source_plugin(name: str) -> Any:
    """The source class registered under ``tessera.sources`` as ``name``."""
    from tessera.core.sources.registry import source_class

    return source_class(name)


def open_sources(
    specs: list[str] | tuple[str, ...] = (),
    *,
    contexts: list[str] | tuple[str, ...] = (),
    kubeconfig: str | None = None,
    stdin: TextIO | None = None,
    speed: float = 1.0,
    loop: bool = False,
) -> list[Any]:
    """Open the sources a command names.

    Args:
        specs: ``-s`` values: a file, a directory, ``-`` (stdin), ``demo`` (the bundled cluster),
            ``replay:FILE`` / ``replay:demo`` (a recording, each its own source), ``local`` (this
            node's store), ``peer:NAME`` (a peer's replica) or ``peers`` (every peer's replica):
            each store its own read-only source, once however often it is named.
            Several manifest specs merge into one source, so relationships cross files.
            ``knowledge`` (what ``tessera ingest`` stored): alone, its own source; beside other
            sources, its Document and Chunk kinds join each of them (core/sources/joined.py),
            so MENTIONS links chunks to that source's resources in one query.
        contexts: kube contexts (``--context``), each a live source; none and no specs means the
            kubeconfig's current context.
        kubeconfig: path to a kubeconfig (else KUBECONFIG, else ~/.kube/config).
        stdin: the stream ``-`` reads.
        speed, loop: how recordings play (recording seconds per second; start over at the end).
    Returns:
        a list of sources (objects implementing core/sources/protocol.py's Source), each
        hiding its Secrets' values unless the user opted in (core/secrets.py).
    """
    from tessera.core.secrets import guard

    sources: list[Any] = []
    knowledge = KNOWLEDGE_SPEC in specs
    specs = [s for s in specs if s != KNOWLEDGE_SPEC]
    replays = [s for s in specs if s.startswith("replay:")]
    for spec in replays:
        if not spec[len("replay:"):]:
            raise UsageError("replay: needs a recording file", hint="-s replay:FILE, or -s replay:demo")
        sources.append(source_plugin("replay")(spec[len("replay:"):], speed=speed, loop=loop))
    specs = [s for s in specs if not s.startswith("replay:")]
    stores = [s for s in specs if is_store_spec(s)]
    sources.extend(open_stores(stores))
    specs = [s for s in specs if not is_store_spec(s)]
    if specs:
        if list(specs).count("-") > 1:
            raise UsageError("stdin ('-') can be given as a source only once")
        manifests = source_plugin("manifests")
        parts = []
        for spec in specs:
            if spec == "demo":
                parts.append(source_plugin("demo")())
            else:
                parts.append(manifests(spec, stdin=stdin if spec == "-" else None))
        from tessera.core.sources.union import UnionSource

        sources.append(parts[0] if len(parts) == 1 else UnionSource(parts))
    if contexts or not (specs or replays or stores or knowledge):
        kube = source_plugin("kubernetes")
        for ctx in contexts or [None]:
            sources.append(kube(context=ctx, kubeconfig=kubeconfig))
    if knowledge:
        sources = join_knowledge(sources)
    return [guard(s) for s in sources]


KNOWLEDGE_SPEC = "knowledge"


def join_knowledge(sources: list[Any]) -> list[Any]:
    """``-s knowledge``: the knowledge source alone when nothing else is named, else each source
    with the knowledge kinds joined to it (each join its own read-only connection, so each
    watches on its own)."""
    knowledge = source_plugin(KNOWLEDGE_SPEC)
    if not sources:
        return [knowledge()]
    from tessera.core.sources.joined import JoinedSource

    return [JoinedSource(source, knowledge()) for source in sources]


STORE_SPECS = ("local", "peers")  # and peer:NAME


def is_store_spec(spec: str) -> bool:
    """True for the ``-s`` specs naming stores: ``local``, ``peers``, ``peer:NAME``."""
    return spec in STORE_SPECS or spec.startswith("peer:")


def open_stores(specs: list[str]) -> list[Any]:
    """The store sources ``specs`` name, in order, each store once (``-s peers -s peer:alice``
    opens alice once).

    Raises:
        UsageError for ``peer:`` with no name or an unknown peer; SourceUnavailable when a named
        peer has no replica yet, or ``peers`` alone finds no peer with one.
    """
    from tessera.core.errors import SourceUnavailable

    opened: list[Any] = []
    seen: set[str] = set()

    def keep(source: Any, key: str) -> None:
        if key in seen:
            source.close()
        else:
            seen.add(key)
            opened.append(source)

    try:
        for spec in specs:
            if spec == "local":
                keep(source_plugin("local")(), "local")
            elif spec == "peers":
                every = source_plugin("peer").every()
                if not every and len(specs) == 1:
                    raise SourceUnavailable("no peer has sent anything yet: there is no replica to read",
                                            hint="see `tessera peer list`, then run `tessera peer sync`")
                for source in every:
                    keep(source, source.node_id)
            else:
                name = spec[len("peer:"):]
                if not name:
                    raise UsageError("peer: needs a peer's name or id", hint="-s peer:NAME; see `tessera peer list`")
                source = source_plugin("peer")(name)
                keep(source, source.node_id)
    except BaseException:
        for source in opened:
            source.close()
        raise
    return opened


def open_context(context: str, kubeconfig: str | None) -> Any:
    """One kube context as a source (a query's ``IN`` naming a context not open yet)."""
    from tessera.core.secrets import guard

    return guard(source_plugin("kubernetes")(context=context, kubeconfig=kubeconfig))
