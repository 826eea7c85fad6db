"""Splitting a file's text into chunks (docs/knowledge.md "Ingesting"): markdown by headings,
code by top-level definitions or blocks, plain text by paragraphs. Pure functions of the text:
no file access, no embeddings, no mentions (core/knowledge/ingest.py adds those).

Every chunk is at most about MAX_CHUNK_CHARS long so that it stays a useful search hit: a longer
section or definition is cut further at blank lines (a fenced code block is never cut, and a
single paragraph longer than the cap is cut at line ends). Blank-only parts are not chunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from tessera.core.knowledge.records import ChunkRecord

MAX_CHUNK_CHARS = 4000
HEADING_SEPARATOR = " > "

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mdx"})
# Suffix -> language for code. YAML (kep.yaml, manifests) is code, split by documents (see
# _yaml_parts): its mentions (kind: Deployment, name: web) matter to the graph.
CODE_LANGUAGES = {
    ".py": "python", ".pyi": "python", ".go": "go", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript", ".sh": "shell", ".bash": "shell", ".zsh": "shell",
    ".yaml": "yaml", ".yml": "yaml", ".rs": "rust", ".java": "java", ".kt": "kotlin", ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".rb": "ruby", ".lua": "lua", ".tf": "terraform", ".toml": "toml",
    ".json": "json", ".sql": "sql", ".proto": "protobuf", ".cue": "cue", ".jsonnet": "jsonnet", ".libsonnet": "jsonnet",
}
CODE_FILE_NAMES = {"Makefile": "make", "Dockerfile": "dockerfile", "Containerfile": "dockerfile",
                   "Jenkinsfile": "groovy", "Tiltfile": "starlark"}


@dataclass
class Split:
    """What a file's text became: its kind, title, tags, links, front matter and chunks (with
    text and lines; mentions and embeddings are filled in later), and warnings (a bad front
    matter) to show the user without failing the file."""

    kind: str
    title: str
    language: str | None = None
    tags: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    front_matter: dict[str, Any] = field(default_factory=dict)
    chunks: list[ChunkRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def kind_of(path: str) -> tuple[str, str | None]:
    """(kind, language) of a file from its name: markdown, code (with its language) or text."""
    name = PurePosixPath(path).name
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown", None
    if suffix in CODE_LANGUAGES:
        return "code", CODE_LANGUAGES[suffix]
    if name in CODE_FILE_NAMES:
        return "code", CODE_FILE_NAMES[name]
    return "text", None


def split(path: str, text: str, *, kind: str | None = None, language: str | None = None) -> Split:
    """Split ``text`` (the content of ``path``, '/'-separated) by its kind (default: from its name)."""
    if kind is None:
        kind, language = kind_of(path)
    stem = PurePosixPath(path).stem or PurePosixPath(path).name or path
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if kind == "markdown":
        return _split_markdown(path, text, stem)
    if kind == "code":
        return Split(kind="code", title=PurePosixPath(path).name, language=language,
                     chunks=_split_code(text, language))
    return Split(kind="text", title=stem, chunks=_numbered(_merge_blocks(_paragraphs(_lines(text, 1)), heading="")))


# -- blocks of lines -----------------------------------------------------------------------------

Line = tuple[int, str]  # (1-based line number, text without the newline)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _lines(text: str, first: int) -> list[Line]:
    return list(enumerate(text.split("\n"), start=first))


def _closes(fence: str, line: str) -> bool:
    """Whether ``line`` ends the code block ``fence`` opened: the same character, at least as
    many, nothing after."""
    m = _FENCE.match(line)
    return bool(m) and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
        and not line.strip()[len(m.group(1)):].strip()


def _in_fences(lines: list[Line]) -> list[bool]:
    """For each line, whether it belongs to a fenced code block (its fence lines included)."""
    marks, fence = [], None
    for _, line in lines:
        if fence is not None:
            marks.append(True)
            if _closes(fence, line):
                fence = None
            continue
        m = _FENCE.match(line)
        if m:
            fence = m.group(1)
        marks.append(m is not None)
    return marks


def _paragraphs(lines: list[Line], *, fences: bool = False) -> list[list[Line]]:
    """Runs of non-blank lines; with ``fences``, a fenced code block (blank lines and all) stays
    inside one run."""
    fenced = _in_fences(lines) if fences else [False] * len(lines)
    blocks: list[list[Line]] = []
    current: list[Line] = []
    for (number, line), in_fence in zip(lines, fenced, strict=True):
        if not in_fence and not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        current.append((number, line))
    if current:
        blocks.append(current)
    return blocks


def _merge_blocks(blocks: list[list[Line]], *, heading: str, cap: int = MAX_CHUNK_CHARS) -> list[tuple[str, list[Line]]]:
    """Consecutive blocks joined into parts of at most ``cap`` characters (a block longer than
    that is a part of its own, cut at line ends unless it is a fenced code block)."""
    parts: list[tuple[str, list[Line]]] = []
    current: list[Line] = []
    size = 0
    for block in blocks:
        block_size = sum(len(text) + 1 for _, text in block)
        if current and size + block_size > cap:
            parts.append((heading, current))
            current, size = [], 0
        if block_size > cap and not any(_FENCE.match(text) for _, text in block):
            for piece in _cut_lines(block, cap):
                parts.append((heading, piece))
            continue
        current = current + block if not current else current + [(block[0][0] - 1, "")] + block
        size += block_size
    if current:
        parts.append((heading, current))
    return parts


def _cut_lines(block: list[Line], cap: int) -> list[list[Line]]:
    pieces: list[list[Line]] = [[]]
    size = 0
    for line in block:
        if pieces[-1] and size + len(line[1]) + 1 > cap:
            pieces.append([])
            size = 0
        pieces[-1].append(line)
        size += len(line[1]) + 1
    return pieces


def _numbered(parts: list[tuple[str, list[Line]]]) -> list[ChunkRecord]:
    chunks = []
    for heading, lines in parts:
        text = "\n".join(t for _, t in lines).strip("\n")
        if not text.strip():
            continue
        chunks.append(ChunkRecord(ordinal=len(chunks), heading=heading, start_line=lines[0][0],
                                  end_line=lines[-1][0], text=text))
    return chunks


# -- markdown ------------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^ {0,3}(?:[-+*>|]|\d+[.)]\s|<|    |\t)")
# Bounded and without nested brackets (a URL may hold one level of parentheses, as Wikipedia's
# do), so that text like "[[[[..." or "[a](" repeated costs linear time (an unbounded "[...]("
# scan from every bracket was quadratic: hours on 200 KB).
_LINK = re.compile(r"!?\[[^\[\]\n]{0,500}\]\(\s{0,20}<?((?:[^()\s<>]|\([^()\s<>]{0,200}\)){1,2048})>?(?:\s{1,20}[\"'(][^()\n]{0,500}[\"')])?\s{0,20}\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\[\]\n]{1,500}\]:[ \t]*<?(\S{1,2048}?)>?(?:[ \t].*)?$", re.M)
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^\s<>]+)>")
_WIKI = re.compile(r"\[\[([^\[\]|#]+)(?:#[^\[\]|]*)?(?:\|[^\[\]]*)?\]\]")
_TAG = re.compile(r"(?:^|(?<=\s))#([A-Za-z][\w/-]*[\w])")
_INLINE_CODE = re.compile(r"(`+)(?:.+?)\1")
_FRONT_MATTER_END = re.compile(r"(?m)^(?:---|\.\.\.)[ \t]*$")


def _split_markdown(path: str, text: str, stem: str) -> Split:
    out = Split(kind="markdown", title="")
    body_first_line = 1
    if text.startswith("---\n"):
        end = _FRONT_MATTER_END.search(text, 4)
        if end is not None:
            out.front_matter, warning = _front_matter(path, text[4:end.start()])
            if warning:
                out.warnings.append(warning)
            consumed = text[:end.end()]
            body_first_line = consumed.count("\n") + 2
            text = text[end.end() + 1:]
    lines = _without_comments(_lines(text, body_first_line))
    headings = _headings(lines)
    sections = _sections(lines, headings)
    h1 = next((title for level, title, _ in headings if level == 1), None)
    fm_title = out.front_matter.get("title")
    out.title = (str(fm_title).strip() if isinstance(fm_title, (str, int, float)) and str(fm_title).strip() else None) \
        or h1 or stem
    parts: list[tuple[str, list[Line]]] = []
    for heading, section in sections:
        if _heading_only(section):
            continue
        blocks = _paragraphs(section, fences=True)
        if heading and len(blocks) > 1 and _heading_only(blocks[0]):  # a heading stays with what follows it
            blocks[:2] = [blocks[0] + [(blocks[1][0][0] - 1, "")] + blocks[1]]
        parts.extend(_merge_blocks(blocks, heading=heading))
    out.chunks = _numbered(parts)
    if not out.chunks and sections:  # only headings: they are still what the file says
        out.chunks = _numbered([(sections[0][0], [line for _, section in sections for line in section])])
    prose = "\n".join(t for _, t in _outside_fences(lines))
    out.tags = _unique(_front_matter_tags(out.front_matter) + _TAG.findall(_INLINE_CODE.sub(" ", prose)))
    out.links = _unique(_links(prose))
    return out


_COMMENT_OPEN, _COMMENT_CLOSE = "<!--", "-->"


def _without_comments(lines: list[Line]) -> list[Line]:
    """The lines with HTML comments (``<!-- ... -->``, over any number of lines) blanked, outside
    fenced code. A comment is not rendered, so it is not what the document says: the KEP
    template's instructions, left in most proposals, would otherwise be in every search, and a
    fence or heading written inside one would be taken for a real one."""
    out: list[Line] = []
    fence: str | None = None
    in_comment = False
    for number, line in lines:
        if not in_comment:
            if fence is not None:
                if _closes(fence, line):
                    fence = None
                out.append((number, line))
                continue
            m = _FENCE.match(line)
            if m:
                fence = m.group(1)
                out.append((number, line))
                continue
        kept, rest = [], line
        while rest:
            if in_comment:
                end = rest.find(_COMMENT_CLOSE)
                if end < 0:
                    rest = ""
                else:
                    in_comment, rest = False, rest[end + len(_COMMENT_CLOSE):]
            else:
                start = rest.find(_COMMENT_OPEN)
                if start < 0:
                    kept.append(rest)
                    rest = ""
                else:
                    kept.append(rest[:start])
                    in_comment, rest = True, rest[start + len(_COMMENT_OPEN):]
        cleaned = "".join(kept)
        out.append((number, cleaned if cleaned.strip() or not line.strip() else ""))
    return out


def _front_matter(path: str, source: str) -> tuple[dict[str, Any], str | None]:
    from tessera.core.documents import load_yaml_documents
    from tessera.core.errors import TesseraError

    try:
        docs = load_yaml_documents(source, f"{path} front matter")
    except TesseraError as exc:
        return {}, exc.message
    data = docs[0] if docs else {}
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return {}, f"{path}: front matter is not a mapping (it is ignored)"
    return _plain(data), None


def _plain(value: Any) -> Any:
    """Front matter as JSON-able values (YAML dates and odd keys become strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _front_matter_tags(front: dict[str, Any]) -> list[str]:
    tags = front.get("tags")
    if isinstance(tags, str):
        tags = [t for t in re.split(r"[,\s]+", tags) if t]
    if not isinstance(tags, list):
        return []
    return [str(t).lstrip("#") for t in tags if isinstance(t, (str, int, float)) and str(t).strip()]


def _headings(lines: list[Line]) -> list[tuple[int, str, int]]:
    """Every heading outside fenced code: (level, text, index into ``lines`` where the heading
    starts). A setext heading starts at its text's first line."""
    found: list[tuple[int, str, int]] = []
    paragraph_start: int | None = None
    for i, ((_, line), in_fence) in enumerate(zip(lines, _in_fences(lines), strict=True)):
        if in_fence:
            paragraph_start = None
            continue
        atx = _ATX.match(line)
        if atx:
            found.append((len(atx.group(1)), (atx.group(2) or "").strip(), i))
            paragraph_start = None
            continue
        setext = _SETEXT.match(line)
        if setext and paragraph_start is not None:
            title = " ".join(t.strip() for _, t in lines[paragraph_start:i])
            found.append((1 if setext.group(1)[0] == "=" else 2, title, paragraph_start))
            paragraph_start = None
            continue
        if not line.strip():
            paragraph_start = None
        elif paragraph_start is None:
            paragraph_start = None if _NOT_PARAGRAPH.match(line) else i
    return found


def _sections(lines: list[Line], headings: list[tuple[int, str, int]]) -> list[tuple[str, list[Line]]]:
    """The lines split at each heading, each with its heading path ("A > B")."""
    sections: list[tuple[str, list[Line]]] = []
    stack: list[tuple[int, str]] = []
    start, heading = 0, ""
    for level, title, index in headings:
        sections.append((heading, lines[start:index]))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        start, heading = index, HEADING_SEPARATOR.join(t for _, t in stack)
    sections.append((heading, lines[start:]))
    return [(h, s) for h, s in sections if s]


def _heading_only(section: list[Line]) -> bool:
    """Nothing in the section but its heading (ATX line, or setext text and underline) and blanks."""
    rest = [t for _, t in section if t.strip()]
    if not rest:
        return True
    if _ATX.match(rest[0]):
        return len(rest) == 1
    underline = next((i for i, t in enumerate(rest) if _SETEXT.match(t)), None)
    return underline is not None and underline == len(rest) - 1


def _outside_fences(lines: list[Line]) -> list[Line]:
    return [line for line, in_fence in zip(lines, _in_fences(lines), strict=True) if not in_fence]


def _links(prose: str) -> list[str]:
    found: list[tuple[int, str]] = []
    for pattern in (_LINK, _REFERENCE, _AUTOLINK, _WIKI):
        found.extend((m.start(), m.group(1).strip()) for m in pattern.finditer(prose))
    return [link for _, link in sorted(found) if link]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- code ----------------------------------------------------------------------------------------

# A line that starts a top-level definition, per language (the block heuristic for non-Python code).
_DEFINITION = {
    "go": re.compile(r"^(?:func|type|var|const)\b\s*(?:\([^)]*\)\s*)?(\w+)?"),
    "javascript": re.compile(r"^(?:export\s+(?:default\s+)?)?(?:async\s+)?(?:function\*?|class|const|let|var)\s+(\w+)"),
    "typescript": re.compile(r"^(?:export\s+(?:default\s+)?)?(?:declare\s+)?(?:async\s+)?"
                             r"(?:function\*?|class|interface|type|enum|const|let|var|namespace)\s+(\w+)"),
    "shell": re.compile(r"^(?:function\s+)?([\w:.-]+)\s*\(\)\s*\{?|^function\s+([\w:.-]+)"),
    "rust": re.compile(r"^(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:unsafe\s+)?"
                       r"(?:fn|struct|enum|trait|impl(?:<[^>]*>)?|mod|type|const|static|macro_rules!)\s+([\w:<>]+)"),
    "java": re.compile(r"^(?:public|private|protected|abstract|final|static|\s)*(?:class|interface|enum|record)\s+(\w+)"),
    "kotlin": re.compile(r"^(?:public|private|internal|data|sealed|open|abstract|\s)*(?:class|interface|object|fun|val)\s+(\w+)"),
    "ruby": re.compile(r"^(?:def|class|module)\s+([\w.:?!]+)"),
    "terraform": re.compile(r"^(resource|data|module|variable|output|provider|locals)\b.*\{"),
    "make": re.compile(r"^([\w./%-]+)\s*:(?!=)"),
    "c": re.compile(r"^(?!\s)(?!#)[\w\s\*]+?\b(\w+)\s*\([^;]*$"),
    "cpp": re.compile(r"^(?!\s)(?!#)(?:class|struct|namespace)\s+(\w+)|^(?!\s)(?!#)[\w\s\*:<>&]+?\b(\w+)\s*\([^;]*$"),
}
_GENERIC_DEFINITION = re.compile(r"^(?:def|class|function|func|fn|module|interface|type)\s+(\w+)")
_CONTINUATION = re.compile(r"^(?:\s|[}\])]|else\b|elif\b|except\b|finally\b|end\b)")


def _split_code(text: str, language: str | None) -> list[ChunkRecord]:
    if language == "python":
        parts = _python_parts(text)
        if parts is not None:
            return _numbered(parts)
    if language == "yaml":
        return _numbered(_yaml_parts(_lines(text, 1)))
    return _numbered(_code_blocks(_lines(text, 1), language))


_YAML_DOCUMENT = re.compile(r"^---(?:\s|$)")
_YAML_KIND = re.compile(r"^kind:\s*['\"]?([\w.-]+)", re.M)
_YAML_NAME = re.compile(r"^metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]+name:\s*['\"]?([\w.:-]+)", re.M)


def _yaml_parts(lines: list[Line]) -> list[tuple[str, list[Line]]]:
    """YAML by documents (``---``), each merged up to the cap: a kep.yaml's metadata is read as
    a whole (one chunk, not a chunk per key), and a manifest's document is headed by its kind
    and name (``Deployment/web``)."""
    documents: list[list[Line]] = [[]]
    for line in lines:
        if _YAML_DOCUMENT.match(line[1]):
            documents.append([])
        else:
            documents[-1].append(line)
    parts: list[tuple[str, list[Line]]] = []
    for document in documents:
        text = "\n".join(t for _, t in document) + "\n"
        kind, name = _YAML_KIND.search(text), _YAML_NAME.search(text)
        heading = f"{kind.group(1)}/{name.group(1)}" if kind and name else ""
        parts.extend(_merge_blocks(_paragraphs(document), heading=heading))
    return parts


def _python_parts(text: str) -> list[tuple[str, list[Line]]] | None:
    """The module's leading part (docstring, imports, constants) and each top-level def or class
    (decorators and the comment lines just above it included), in order; statements between
    definitions are parts of their own. None when the text is not valid Python."""
    import ast

    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    lines = _lines(text, 1)
    spans: list[tuple[str, int, int]] = []  # (heading, first line, last line), definitions only
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            while first > 1 and lines[first - 2][1].lstrip().startswith("#") and \
                    (not spans or first - 1 > spans[-1][2]):
                first -= 1
            word = "class" if isinstance(node, ast.ClassDef) else \
                "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
            spans.append((f"{word} {node.name}", first, node.end_lineno or node.lineno))
    parts: list[tuple[str, list[Line]]] = []
    cursor = 1
    for heading, first, last in spans:
        if first > cursor:
            parts.extend(_merge_blocks(_paragraphs(lines[cursor - 1:first - 1]), heading=""))
        parts.extend(_merge_blocks(_paragraphs(lines[first - 1:last]), heading=heading))
        cursor = last + 1
    if cursor <= len(lines):
        parts.extend(_merge_blocks(_paragraphs(lines[cursor - 1:]), heading=""))
    return parts


def _code_blocks(lines: list[Line], language: str | None) -> list[tuple[str, list[Line]]]:
    """Blank-line-separated blocks; a block that starts indented (or with a closing bracket) is
    still inside the one before. A block whose first code line starts a definition is a part
    headed by it; other blocks are merged with their neighbours up to the cap."""
    pattern = _DEFINITION.get(language or "", _GENERIC_DEFINITION)
    blocks: list[list[Line]] = []
    for block in _paragraphs(lines):
        if blocks and _CONTINUATION.match(block[0][1]):
            blocks[-1] = blocks[-1] + [(block[0][0] - 1, "")] + block
        else:
            blocks.append(block)
    parts: list[tuple[str, list[Line]]] = []
    loose: list[list[Line]] = []
    for block in blocks:
        heading = _definition_heading(block, pattern)
        if heading is None:
            loose.append(block)
            continue
        parts.extend(_merge_blocks(loose, heading=""))
        loose = []
        parts.extend(_merge_blocks([block], heading=heading))
    parts.extend(_merge_blocks(loose, heading=""))
    return parts


def _definition_heading(block: list[Line], pattern: re.Pattern) -> str | None:
    for _, line in block:
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "//", "/*", "*", "--")) and not pattern.match(line):
            continue
        m = pattern.match(line)
        if not m:
            return None
        name = next((g for g in m.groups() if g), None)
        head = line.strip().rstrip("{").strip()
        return (head if len(head) <= 80 else head[:79] + "…") if name is None or len(head) <= 80 else name
    return None
