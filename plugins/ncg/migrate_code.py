"""``ncrt migrate code``: rewrite legacy NeuronCore Group usage for runtime 2.x.

Python files are rewritten through a concrete syntax tree (libcst), so formatting and
comments survive; shell files are rewritten line by line. Rewritten:

* ``NEURONCORE_GROUP_SIZES`` set to a literal (``os.environ[...] = '2,4,3,4'``,
  ``os.environ.setdefault(...)``, ``os.putenv(...)``, ``update(NEURONCORE_GROUP_SIZES=...)``,
  a dict entry, or a shell assignment / ``export``) -> ``NEURON_RT_NUM_CORES`` = the sum
  of the sizes;
* ``mx.neuron(i)`` with a literal group index ``i`` -> ``mx.neuron(start of group i)``
  (``mx.neuron(1)`` -> ``mx.neuron(2)`` for ``2,4,3,4``).

Anything else that mentions the variable, and ``mx.neuron(expr)`` with a computed
index, is reported with its file and line instead (a :class:`Finding`).
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from ncrt.errors import ConfigError, FrameworkMissingError

from .shim import VARIABLE, GroupLayout, layout_of

if TYPE_CHECKING:
    import libcst

__all__ = [
    "REPLACEMENT",
    "Finding",
    "FileMigration",
    "migrate_source",
    "migrate_python",
    "migrate_shell",
    "migrate_paths",
    "collect_files",
    "sizes_in_source",
]

REPLACEMENT = "NEURON_RT_NUM_CORES"
PYTHON_SUFFIXES = (".py", ".pyw")
SHELL_SUFFIXES = (".sh", ".bash")
_SKIPPED_DIRS = {".git", ".venv", "venv", "__pycache__", "node_modules", ".tox"}


@dataclass(frozen=True)
class Finding:
    """Legacy usage that was not rewritten: ``path:line: message``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class FileMigration:
    """One file: its text before and after, and what could not be rewritten."""

    path: str
    original: str
    rewritten: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.original != self.rewritten

    def diff(self) -> str:
        """The unified diff from ``a/PATH`` to ``b/PATH`` (empty when unchanged)."""
        lines = difflib.unified_diff(
            self.original.splitlines(keepends=True), self.rewritten.splitlines(keepends=True),
            f"a/{self.path.lstrip('/')}", f"b/{self.path.lstrip('/')}",
        )
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


# --- Python ----------------------------------------------------------------------------


def _string_value(node: libcst.BaseExpression) -> str | None:
    """The value of a plain string literal (no f-string, no concatenation), else None."""
    import libcst

    if not isinstance(node, libcst.SimpleString):
        return None
    try:
        value = ast.literal_eval(node.value)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None


def _with_text(node: libcst.SimpleString, text: str) -> libcst.SimpleString:
    """``node`` with its content replaced, keeping its prefix and quotes."""
    return node.with_changes(value=f"{node.prefix}{node.quote}{text}{node.quote}")


def _is_variable_name(node: libcst.BaseExpression) -> bool:
    return _string_value(node) == VARIABLE


def _mxnet_aliases(module: libcst.Module) -> set[str]:
    """Names bound to the mxnet module by ``import mxnet [as X]`` (default {mx, mxnet})."""
    import libcst
    import libcst.matchers as m

    aliases: set[str] = set()
    for node in m.findall(module, m.Import()):
        for alias in node.names:
            if libcst.helpers.get_full_name_for_node(alias.name) == "mxnet":
                aliases.add(alias.asname.name.value if alias.asname else "mxnet")
    return aliases or {"mx", "mxnet"}


def _literal_values(module: libcst.Module) -> list[str]:
    """Pass 1: the literal values the module assigns to NEURONCORE_GROUP_SIZES."""
    import libcst.matchers as m

    found: list[str] = []
    for node in m.findall(module, m.Assign() | m.Call() | m.DictElement()):
        pair = _setting_pair(node)
        value = None if pair is None else _string_value(pair[1])
        if value is not None:
            found.append(value)
    return found


def _setting_pair(node: libcst.CSTNode) -> tuple[libcst.CSTNode, libcst.BaseExpression] | None:
    """(key node, value node) when ``node`` sets the variable, else None."""
    import libcst

    if isinstance(node, libcst.Assign) and len(node.targets) == 1:
        target = node.targets[0].target
        if isinstance(target, libcst.Subscript) and len(target.slice) == 1:
            key = target.slice[0].slice
            if isinstance(key, libcst.Index) and _is_variable_name(key.value):
                return key.value, node.value
    if isinstance(node, libcst.DictElement) and _is_variable_name(node.key):
        return node.key, node.value
    if isinstance(node, libcst.Call):
        return _call_pair(node)
    return None


def _call_pair(node: libcst.Call) -> tuple[libcst.CSTNode, libcst.BaseExpression] | None:
    """``setdefault('NEURONCORE_GROUP_SIZES', v)``, ``putenv(...)`` or ``update(NEURONCORE_GROUP_SIZES=v)``."""
    positional = [arg for arg in node.args if arg.keyword is None and not arg.star]
    if len(positional) == 2 and _is_variable_name(positional[0].value):
        return positional[0].value, positional[1].value
    for arg in node.args:
        if arg.keyword is not None and arg.keyword.value == VARIABLE:
            return arg.keyword, arg.value
    return None


def sizes_in_source(source: str, python: bool) -> list[str]:
    """The literal NEURONCORE_GROUP_SIZES values a Python or shell source sets."""
    if not python:
        return [_unquote(match.group("value")) for match in _SHELL_SETTING.finditer(source)
                if "$" not in match.group("value")]
    import libcst

    try:
        return _literal_values(libcst.parse_module(source))
    except libcst.ParserSyntaxError:
        return []


def _make_transformer(path: str, layout: GroupLayout | None, aliases: set[str]):
    """A libcst transformer rewriting settings and ``mx.neuron(i)`` (see the module doc)."""
    import libcst
    from libcst.metadata import PositionProvider

    class Transformer(libcst.CSTTransformer):
        METADATA_DEPENDENCIES = (PositionProvider,)

        def __init__(self) -> None:
            super().__init__()
            self.findings: list[Finding] = []
            self.mentions: list[libcst.CSTNode] = []  # every use of the variable's name
            self.handled: set[int] = set()  # ids of the mentions rewritten

        def _report(self, node: libcst.CSTNode, message: str) -> None:
            line = self.get_metadata(PositionProvider, node).start.line
            self.findings.append(Finding(path, line, message))

        def visit_SimpleString(self, node: libcst.SimpleString) -> None:
            if _is_variable_name(node):
                self.mentions.append(node)

        def visit_Arg(self, node: libcst.Arg) -> None:
            if node.keyword is not None and node.keyword.value == VARIABLE:
                self.mentions.append(node.keyword)

        def leave_Assign(self, original: libcst.Assign, updated: libcst.Assign) -> libcst.Assign:
            return self._setting(original, updated)

        def leave_DictElement(self, original: libcst.DictElement, updated: libcst.DictElement) -> libcst.DictElement:
            return self._setting(original, updated)

        def leave_Call(self, original: libcst.Call, updated: libcst.Call) -> libcst.Call:
            if _is_mx_neuron(updated.func, aliases):
                return self._mx_neuron(original, updated)
            return self._setting(original, updated)

        def _setting(self, original, updated):
            pair, original_pair = _setting_pair(updated), _setting_pair(original)
            text = None if pair is None else _string_value(pair[1])
            if text is None:
                return updated  # a computed value: reported as an unhandled mention
            self.handled.add(id(original_pair[0]))
            try:
                total = layout_of(text).total
            except ConfigError as error:
                self._report(original, f"{VARIABLE} value {text!r} is invalid: {error}")
                return updated
            step = updated.deep_replace(pair[1], _with_text(pair[1], str(total)))
            key = _setting_pair(step)[0]
            return step.deep_replace(key, _renamed(key))

        def _mx_neuron(self, original: libcst.Call, updated: libcst.Call) -> libcst.Call:
            if layout is None or not updated.args:
                return updated
            arg = updated.args[0]
            if not isinstance(arg.value, libcst.Integer):
                self._report(original, _computed_index_message(layout))
                return updated
            group = int(arg.value.value, 0)
            if group >= len(layout.sizes):
                self._report(original, f"mx.neuron({group}): group {group} does not exist in "
                             f"{VARIABLE}={','.join(map(str, layout.sizes))}")
                return updated
            return updated.deep_replace(arg.value, libcst.Integer(str(layout.starts[group])))

    return Transformer()


def _is_mx_neuron(func: libcst.BaseExpression, aliases: set[str]) -> bool:
    """``mx.neuron`` (any alias bound to mxnet)."""
    import libcst

    return (isinstance(func, libcst.Attribute) and func.attr.value == "neuron"
            and isinstance(func.value, libcst.Name) and func.value.value in aliases)


def _renamed(key: libcst.CSTNode) -> libcst.CSTNode:
    import libcst

    if isinstance(key, libcst.SimpleString):
        return _with_text(key, REPLACEMENT)
    return key.with_changes(value=REPLACEMENT)


def _computed_index_message(layout: GroupLayout) -> str:
    starts = list(layout.starts)
    return (f"mx.neuron(...) with a computed NeuronCore Group index: under runtime 2.x pass the "
            f"group's start core instead, for example mx.neuron({starts}[index])")


def _layout_for(path: str, values: Sequence[str], given: GroupLayout | None,
                findings: list[Finding]) -> GroupLayout | None:
    """The file's own literal value wins over ``given``; conflicting values are reported."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1:
        findings.append(Finding(path, 1, f"{VARIABLE} is set to several values ({', '.join(distinct)}); "
                                "mx.neuron(i) group indices are translated with the first"))
    for value in distinct[:1]:
        try:
            return layout_of(value)
        except ConfigError:
            return given
    return given


def migrate_python(path: str, source: str, layout: GroupLayout | None = None) -> FileMigration:
    """Rewrite one Python source; ``layout`` is used when the file sets no sizes itself."""
    try:
        import libcst
    except ImportError:
        raise FrameworkMissingError("libcst", "tools") from None
    from libcst.metadata import MetadataWrapper

    try:
        module = libcst.parse_module(source)
    except libcst.ParserSyntaxError as error:
        return FileMigration(path, source, source, [Finding(path, error.raw_line, f"cannot parse: {error.message}")])
    findings: list[Finding] = []
    layout = _layout_for(path, _literal_values(module), layout, findings)
    wrapper = MetadataWrapper(module)
    transformer = _make_transformer(path, layout, _mxnet_aliases(module))
    rewritten = wrapper.visit(transformer)
    findings += transformer.findings + _unhandled(path, wrapper, transformer)
    return FileMigration(path, source, rewritten.code, sorted(findings, key=lambda f: f.line))


def _unhandled(path: str, wrapper, transformer) -> list[Finding]:
    from libcst.metadata import PositionProvider

    positions = wrapper.resolve(PositionProvider)
    return [
        Finding(path, positions[node].start.line,
                f"{VARIABLE} used in a way ncrt cannot rewrite safely (not a literal setting); "
                f"replace it with {REPLACEMENT} or NEURON_RT_VISIBLE_CORES by hand")
        for node in transformer.mentions if id(node) not in transformer.handled
    ]


# --- shell ---------------------------------------------------------------------------

_SHELL_SETTING = re.compile(
    r"(?P<prefix>(?:^|(?<=[\s;&|(]))(?:export\s+)?)" + VARIABLE +
    r"=(?P<value>'[^']*'|\"[^\"]*\"|[^\s;&|)]*)"
)


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def _shell_line(path: str, number: int, line: str, findings: list[Finding]) -> str:
    if VARIABLE not in line or line.lstrip().startswith("#"):
        return line

    def replace(match: re.Match[str]) -> str:
        raw = match.group("value")
        try:
            total = layout_of(_unquote(raw)).total if "$" not in raw else None
        except ConfigError as error:
            findings.append(Finding(path, number, f"{VARIABLE} value {raw} is invalid: {error}"))
            return match.group(0)
        if total is None:
            findings.append(Finding(path, number, f"{VARIABLE}={raw} is computed; set {REPLACEMENT} by hand"))
            return match.group(0)
        quote = raw[0] if raw[:1] in ("'", '"') else ""
        return f"{match.group('prefix')}{REPLACEMENT}={quote}{total}{quote}"

    rewritten = _SHELL_SETTING.sub(replace, line)
    if VARIABLE in _SHELL_SETTING.sub("", line):
        findings.append(Finding(path, number, f"{VARIABLE} used in a way ncrt cannot rewrite safely; "
                                f"replace it with {REPLACEMENT} by hand"))
    return rewritten


def migrate_shell(path: str, source: str, layout: GroupLayout | None = None) -> FileMigration:
    """Rewrite the literal ``[export] NEURONCORE_GROUP_SIZES=...`` settings of a shell script.

    ``layout`` is accepted for symmetry with :func:`migrate_python`; shell settings
    carry their own sizes.
    """
    findings: list[Finding] = []
    lines = source.splitlines(keepends=True)
    rewritten = [_shell_line(path, number, line, findings) for number, line in enumerate(lines, 1)]
    return FileMigration(path, source, "".join(rewritten), findings)


# --- files -----------------------------------------------------------------------------


def _kind(path: Path, source: str) -> str | None:
    """``python``, ``shell`` or None, by suffix or else by the ``#!`` line."""
    if path.suffix in PYTHON_SUFFIXES:
        return "python"
    if path.suffix in SHELL_SUFFIXES:
        return "shell"
    first = source.split("\n", 1)[0]
    if first.startswith("#!"):
        return "python" if "python" in first else "shell" if re.search(r"\b(ba|z|k|da)?sh\b", first) else None
    return None


def collect_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, and the Python and shell files under the folders named."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in PYTHON_SUFFIXES + SHELL_SUFFIXES
                            and not _SKIPPED_DIRS.intersection(p.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"ncrt migrate code: {path} does not exist")
    return list(dict.fromkeys(files))


def migrate_source(path: str, source: str, kind: str, layout: GroupLayout | None) -> FileMigration:
    if kind == "python":
        return migrate_python(path, source, layout)
    return migrate_shell(path, source, layout)


def _shared_layout(sources: dict[Path, tuple[str, str]], given: GroupLayout | None) -> GroupLayout | None:
    """``given``, else the first literal value set by any of the files (a launcher script)."""
    if given is not None:
        return given
    for source, kind in sources.values():
        for value in sizes_in_source(source, kind == "python"):
            try:
                return layout_of(value)
            except ConfigError:
                continue
    return None


def migrate_paths(paths: Iterable[str | Path], layout: GroupLayout | None = None) -> list[FileMigration]:
    """Migrate every Python and shell file under ``paths``.

    ``layout`` (from ``--group-sizes`` or the environment) translates ``mx.neuron(i)``
    in files that do not set ``NEURONCORE_GROUP_SIZES`` themselves; without it, the
    first value set by any of the files (such as a launcher script) is used.
    """
    sources: dict[Path, tuple[str, str]] = {}
    skipped: list[FileMigration] = []
    for path in collect_files(paths):
        source = path.read_text()
        kind = _kind(path, source)
        if kind is None:
            skipped.append(FileMigration(str(path), source, source,
                                         [Finding(str(path), 1, "not a Python or shell file; skipped")]))
            continue
        sources[path] = (source, kind)
    shared = _shared_layout(sources, layout)
    return [migrate_source(str(path), source, kind, shared) for path, (source, kind) in sources.items()] + skipped
