"""Macros: named, parameterised query scripts in Cyphernetes' macro file format.

A macro file holds macros one after another::

    # a comment line
    :expose deploymentName        # Expose a deployment as a service
    MATCH (d:Deployment {name: "$deploymentName"})
    CREATE (d)->(s:Service);
    MATCH (s:Service {name: "$deploymentName"}) RETURN s.metadata.name;

A header line starts with ``:``, then the macro's name, its parameters, and optionally ``#`` and a
description. The lines after it, up to the next header, are its statements, separated by ``;``.
``$param`` in a statement is replaced by the argument given for it. ``:name arg ...`` in the shell
(or anywhere ``expand`` is used) runs the statements in order.

The built-in macros are Cyphernetes' defaults, those that run on our engine (see docs/shell.md for
the ones adjusted or left out); the user's file is ``<data home>/macros.txt``
(``tessera.core.config.macros_file()``), whose macros replace built-in ones of the same name.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tessera.core.errors import InputError, UsageError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PARAM_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Macro:
    """One macro.

    name: what follows ``:`` when calling it; params: parameter names, in call order;
    statements: query texts (``$param`` not yet substituted, no trailing ``;``);
    doc: the description after ``#`` on the header line ("" when none);
    origin: ``built-in`` or ``PATH:LINE`` of the header line.
    """

    name: str
    params: tuple[str, ...]
    statements: tuple[str, ...]
    doc: str = ""
    origin: str = "built-in"

    def usage(self) -> str:
        """How to call it: ``:name param1 param2``."""
        return " ".join([f":{self.name}", *self.params])


def split_statements(text: str) -> list[str]:
    """Split text on ``;`` outside strings, backtick names and comments.

    Args:
        text: one or more statements.
    Returns:
        the statements, stripped, without their ``;``; empty ones (only blanks or comments) dropped.
    """
    out: list[str] = []
    start = i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'`":
            i = _skip_quoted(text, i)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == ";":
            out.append(text[start:i])
            start = i = i + 1
        else:
            i += 1
    out.append(text[start:])
    return [s.strip() for s in out if _has_code(s)]


def _skip_quoted(text: str, i: int) -> int:
    """Index just past the quoted run starting at ``i`` (or the end when unterminated)."""
    quote = text[i]
    i += 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return len(text)


def _has_code(text: str) -> bool:
    """True when text holds something besides blanks and comments."""
    stripped = re.sub(r"//[^\n]*|/\*.*?(\*/|\Z)", "", text, flags=re.S)
    return bool(stripped.strip())


def parse_macros(text: str, origin: str = "built-in") -> list[Macro]:
    """Read macros in Cyphernetes' format.

    Args:
        text: the file's contents.
        origin: the file's path, used in error messages and in each Macro's origin
            (``built-in`` for the bundled macros).
    Returns:
        the macros, in file order.
    Raises:
        InputError (exit 2) naming ``origin:line`` for a statement before any header, a bad
        macro or parameter name, a repeated parameter or macro, or a macro without statements.
    """
    macros: list[Macro] = []
    seen: dict[str, int] = {}
    header: tuple[str, tuple[str, ...], str, int] | None = None
    body: list[str] = []

    def fail(line: int, what: str, hint: str | None = None) -> InputError:
        return InputError(f"{origin}:{line}: {what}", hint=hint)

    def finish() -> None:
        if header is None:
            return
        name, params, doc, line = header
        statements = split_statements("\n".join(body))
        if not statements:
            raise fail(line, f"macro ':{name}' has no statements", hint="put its queries on the lines after the header")
        where = "built-in" if origin == "built-in" else f"{origin}:{line}"
        macros.append(Macro(name, params, tuple(statements), doc, where))

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line.startswith(":"):
            if line.startswith("#") or (not line and header is None):
                continue  # comment lines, and blank lines before the first macro
            if header is None:
                raise fail(number, "a statement outside a macro",
                           hint="start each macro with a header line such as ':name param1 param2'")
            body.append(raw)
            continue
        finish()
        body = []
        spec, _, doc = line[1:].partition("#")
        words = spec.split()
        if not words:
            raise fail(number, "a macro header without a name", hint="write ':name [params...] [# description]'")
        name, params = words[0], tuple(words[1:])
        if not _NAME.match(name):
            raise fail(number, f"'{name}' is not a valid macro name", hint="use letters, digits and _, not starting with a digit")
        for param in params:
            if not _NAME.match(param.lstrip("$")):
                raise fail(number, f"'{param}' is not a valid parameter name for ':{name}'")
        params = tuple(p.lstrip("$") for p in params)
        twice = next((p for i, p in enumerate(params) if p in params[:i]), None)
        if twice is not None:
            raise fail(number, f"macro ':{name}' names parameter '{twice}' twice")
        if name in seen:
            raise fail(number, f"macro ':{name}' is defined twice (first at line {seen[name]})")
        seen[name] = number
        header = (name, params, doc.strip(), number)
    finish()
    return macros


def load_macros(path: Path | None = None) -> dict[str, Macro]:
    """The built-in macros plus the user's, by name (a user macro replaces a built-in one).

    Args:
        path: the user macro file (default: ``<data home>/macros.txt``); a missing file is fine.
    Returns:
        name -> Macro, built-in ones first, then the user's in file order.
    Raises:
        InputError naming the file and line when the user's file is malformed or unreadable.
    """
    from tessera.core import config

    macros = {m.name: m for m in parse_macros(DEFAULT_MACROS)}
    path = config.macros_file() if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return macros
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the macro file: {getattr(exc, 'strerror', None) or exc}") from None
    for macro in parse_macros(text, str(path)):
        macros.pop(macro.name, None)  # so the user's version lists where they put it
        macros[macro.name] = macro
    return macros


def is_macro_call(text: str) -> bool:
    """True when text is a macro call (``:name ...``), as opposed to a query."""
    return text.lstrip().startswith(":")


def expand(text: str, macros: dict[str, Macro]) -> list[str]:
    """Turn a macro call into the query texts it stands for.

    Args:
        text: ``:name`` or ``:name arg1 arg2`` (arguments split like a shell's: quote one holding
            spaces); a trailing ``;`` is ignored.
        macros: from load_macros().
    Returns:
        the statements with every ``$param`` replaced by its argument.
    Raises:
        UsageError (exit 2) for text that is not a macro call, an unknown macro (suggesting close
        names) or the wrong number of arguments (showing the usage).
    """
    call = text.strip()
    if call.endswith(";"):
        call = call[:-1].rstrip()
    if not call.startswith(":"):
        raise UsageError(f"not a macro call: {call[:40]!r}", hint="a macro call starts with ':', e.g. :po")
    try:
        words = shlex.split(call[1:])
    except ValueError as exc:
        raise UsageError(f"cannot read the macro call: {exc}", hint="close the quote") from None
    if not words:
        raise UsageError("':' needs a macro name", hint=r"\m lists the macros")
    name, args = words[0], words[1:]
    macro = macros.get(name)
    if macro is None:
        import difflib

        close = difflib.get_close_matches(name, list(macros), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(':' + c for c in close)}?" if close else r"\m lists the macros"
        raise UsageError(f"unknown macro ':{name}'", hint=hint)
    if len(args) != len(macro.params):
        want = len(macro.params)
        raise UsageError(
            f"macro ':{name}' takes {want} argument{'' if want == 1 else 's'}, got {len(args)}",
            hint=f"usage: {macro.usage()}",
        )
    values = dict(zip(macro.params, args, strict=True))

    def substitute(match: re.Match) -> str:
        # Only declared parameters: a "$" in a regex or a value stays as written.
        return values.get(match.group(1), match.group(0))

    return [_PARAM_REF.sub(substitute, stmt) for stmt in macro.statements]


# Cyphernetes' default macros (cmd/cyphernetes/default_macros.txt, Copyright 2024 Avital Tamir,
# Apache License 2.0 like this project), kept in its format. Changes made here:
# :no used an undefined variable `n` (n.status.allocatable.cpu); :ing read the pre-v1 Ingress
# field backend.serviceName (now backend.service.name). See docs/shell.md.
DEFAULT_MACROS = r"""
:po # List pods
MATCH (pods:Pod)
RETURN pods.metadata.name AS Name,
       pods.status.phase AS Status,
       pods.spec.nodeName AS Node,
       pods.status.podIP AS IP,
       pods.metadata.creationTimestamp AS Age;

:deploy # List deployments
MATCH (deployments:Deployment)
RETURN deployments.metadata.name AS Name,
       deployments.status.replicas AS Ready,
       deployments.spec.replicas AS DesiredReplicas,
       deployments.status.updatedReplicas AS UpToDate,
       deployments.status.availableReplicas AS Available,
       deployments.metadata.creationTimestamp AS Age;

:svc # List services
MATCH (services:Service)
RETURN services.metadata.name AS Name,
       services.spec.type AS Type,
       services.spec.clusterIP AS ClusterIP,
       services.spec.externalIPs AS ExternalIP,
       services.spec.ports AS Ports,
       services.metadata.creationTimestamp AS Age;

:ns # List namespaces
MATCH (namespaces:Namespace)
RETURN namespaces.metadata.name AS Name,
       namespaces.status.phase AS Status,
       namespaces.metadata.creationTimestamp AS Age;

:no # List nodes
MATCH (nodes:Node)
RETURN nodes.metadata.name AS Name,
       nodes.status.nodeInfo.osImage AS OS,
       nodes.status.nodeInfo.kubeletVersion AS Version,
       nodes.status.allocatable.cpu AS CPU,
       nodes.status.allocatable.memory AS Memory,
       nodes.spec.unschedulable AS Unschedulable;

:pv # List persistent volumes
MATCH (persistentVolumes:PersistentVolume)
RETURN persistentVolumes.metadata.name AS Name,
       persistentVolumes.spec.capacity.storage AS Capacity,
       persistentVolumes.spec.accessModes AS AccessModes,
       persistentVolumes.spec.storageClassName AS StorageClass,
       persistentVolumes.status.phase AS Status;

:pvc # List persistent volume claims
MATCH (persistentVolumeClaims:PersistentVolumeClaim)
RETURN persistentVolumeClaims.metadata.name AS Name,
       persistentVolumeClaims.spec.volumeName AS Volume,
       persistentVolumeClaims.spec.resources.requests.storage AS Capacity,
       persistentVolumeClaims.status.phase AS Status,
       persistentVolumeClaims.metadata.creationTimestamp AS Age;

:event # List warning events
MATCH (events:Event)
WHERE events.type = "Warning"
RETURN events.involvedObject.kind AS Resource,
       events.involvedObject.name AS Name,
       events.reason AS Reason,
       events.message AS Message,
       events.lastTimestamp AS LastSeen;

:podmon # Monitor pod resources
MATCH (pods:Pod)
RETURN pods.metadata.name AS Name,
       pods.metadata.namespace AS Namespace,
       pods.spec.containers[0].resources.requests.cpu AS RequestedCPU,
       pods.spec.containers[0].resources.requests.memory AS RequestedMemory,
       pods.status.containerStatuses[0].restartCount AS Restarts;

:ing # List ingresses
MATCH (ingresses:Ingress)
RETURN ingresses.metadata.name AS Name,
       ingresses.spec.rules[0].host AS Host,
       ingresses.spec.rules[0].http.paths[0].path AS Path,
       ingresses.spec.rules[0].http.paths[0].backend.service.name AS Service,
       ingresses.metadata.creationTimestamp AS Age;

:cm # List config maps
MATCH (configMaps:ConfigMap)
RETURN configMaps.metadata.name AS Name,
       configMaps.metadata.namespace AS Namespace,
       configMaps.metadata.creationTimestamp AS Age;

:secret # List secrets
MATCH (secrets:Secret)
RETURN secrets.metadata.name AS Name,
       secrets.metadata.namespace AS Namespace,
       secrets.type AS Type,
       secrets.metadata.creationTimestamp AS Age;

:job # List jobs
MATCH (jobs:Job)
RETURN jobs.metadata.name AS Name,
       jobs.status.succeeded AS Succeeded,
       jobs.status.failed AS Failed,
       jobs.spec.completions AS Completions,
       jobs.status.startTime AS StartTime,
       jobs.status.completionTime AS CompletionTime;

:cronjob # List cron jobs
MATCH (cronJobs:CronJob)
RETURN cronJobs.metadata.name AS Name,
       cronJobs.spec.schedule AS Schedule,
       cronJobs.spec.suspend AS Suspended,
       cronJobs.status.lastScheduleTime AS LastSchedule,
       cronJobs.metadata.creationTimestamp AS Age;

:expose deploymentName # Expose a deployment as a service
MATCH (deployment:Deployment {name: "$deploymentName"})
CREATE (deployment)->(service:Service);
MATCH (services:Service {name: "$deploymentName"})
RETURN services.metadata.name AS Name, services.spec.type AS Type, services.spec.clusterIP AS ClusterIP;

:expose_public deploymentName hostname # Expose a deployment as a service and ingress
MATCH (deployment:Deployment {name: "$deploymentName"})
CREATE (deployment)->(service:Service);
MATCH (services:Service {name: "$deploymentName"})
CREATE (services)->(i:ingress {"spec":{"rules": [{"host": "$hostname"}]}});
MATCH (deployments:Deployment {name: "$deploymentName"})->(services:Service)->(ingresses:Ingress)
RETURN services.metadata.name AS Name, services.spec.type AS Type, services.spec.clusterIP AS ClusterIP, ingresses.spec.rules[0].host AS Host, ingresses.spec.rules[0].http.paths[0].path AS Path, ingresses.spec.rules[0].http.paths[0].backend.service.name AS Service;

:public_deploy deploymentName # Examine a deployment and its services and ingress
MATCH (pods:Pod)->(replicaSets:ReplicaSet)->(deployments:Deployment {name: "$deploymentName"})->(services:Service)->(ingresses:Ingress)
RETURN pods.metadata.name AS Name,
       deployments.metadata.name AS Deployment,
       services.metadata.name AS Service,
       services.spec.type AS Type,
       services.spec.clusterIP AS ClusterIP,
       ingresses.metadata.name AS Ingress,
       ingresses.spec.rules[0].host AS Host,
       ingresses.spec.rules[0].http.paths[0].path AS Path,
       ingresses.spec.rules[0].http.paths[0].backend.service.name AS IngressBackend;

:create_deploy deploymentName image # Create a deployment
CREATE (deployment:Deployment {"metadata": {"name": "$deploymentName", "labels": {"app": "$deploymentName"}}, "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}, "selector": {"matchLabels": {"app": "$deploymentName"}}, "template": {"metadata": {"labels": {"app": "$deploymentName"}}, "spec": {"containers": [{"name": "$deploymentName", "image": "$image"}]}}}});
"""
