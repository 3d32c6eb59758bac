"""The dependency rules of design.md §7, checked: heavy SDKs stay in their adapters and out of
start-up, and the layers import downward only."""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "agentctl"


@functools.cache
def parsed(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once for all the rules here (they only read it)."""
    return ast.parse(path.read_text())


def top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside functions or TYPE_CHECKING blocks)."""
    tree = parsed(path)
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def all_imports(path: Path) -> set[str]:
    """Every module a file imports anywhere: at module level, inside functions (where most of
    agentctl's imports are, to start fast) and under TYPE_CHECKING. Layers are about all of
    them."""
    found: set[str] = set()
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if is_package(node.module):  # `from agentctl.usecases import runs`: the module
                found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def is_package(module: str) -> bool:
    return module.startswith("agentctl") and (PACKAGE.parent / module.replace(".", "/")).is_dir()


def ours(imports: set[str]) -> set[str]:
    """agentctl's own modules among `imports`, as paths: agentctl.store.base -> store/base."""
    out = set()
    for name in imports:
        if name.startswith("agentctl.") and not is_package(name):
            out.add(name.removeprefix("agentctl.").replace(".", "/"))
    return out


MODULES = {p.relative_to(PACKAGE).as_posix(): top_level_imports(p) for p in PACKAGE.rglob("*.py")}
EVERY = {
    p.relative_to(PACKAGE).as_posix().removesuffix(".py"): ours(all_imports(p))
    for p in PACKAGE.rglob("*.py")
}


@pytest.mark.parametrize(
    ("sdk", "owner", "lazy"),
    [
        ("openai", "llm/openai_chat.py", True),
        ("tiktoken", "loop/context.py", True),
        ("rich", "terminal/render.py terminal/run_view.py", True),  # the run view has the spinner
        ("mcp", "tools/mcp_client.py", True),  # issue 26: only a run whose task uses MCP servers
    ],
)
def test_an_sdk_is_imported_only_by_its_adapter(sdk: str, owner: str, lazy: bool) -> None:
    owners = set(owner.split())
    for module, imports in MODULES.items():
        if module in owners and not lazy:
            continue
        assert not any(i == sdk or i.startswith(sdk + ".") for i in imports), (
            f"{module} imports {sdk} at module level"
        )
    # the SDK itself, not a module of ours whose name starts like it (`import mcpadmin`)
    pattern = re.compile(rf"^\s*(?:import {sdk}\b|from {sdk}[\s.])", re.M)
    sources = {
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if pattern.search(p.read_text())
    }
    assert sources <= owners, sources


# design.md §7: who may import whom (every import node, type-only ones too). Modules not named
# here are the middle layer; the rules below fence the top (cli), the presenter (render) and
# the bottom (pure core, records, stores).
BOTTOM = {
    "errors",
    "domain/lifecycle",
    "domain/checkpoints",
    "domain/session",
    "domain/records",
    "atomic",
    "faults",
    "redact",
}
RULES = {
    "terminal/cli": {
        "terminal/render",
        "terminal/ask",
        "terminal/history_view",
        "terminal/json_forms",
        "terminal/notices",
        "terminal/session_view",
        "terminal/tables",
        "terminal/run_view",
        "terminal/event_stream",
        "terminal/tools_list",
        "terminal/transcript",
        "usecases/runs",
        "usecases/common",
        "usecases/inspect",
        "usecases/preferences",
        "usecases/rollback",
        "usecases/sessions",
        "usecases/transfer",
        "config",
        "errors",
        "domain/records",
        "__init__",
        "terminal/completion",  # quoting of shell completions (typer's classes; nothing of ours)
        "usecases/mcp_servers",  # agentctl mcp: the settings file's servers (issue 26)
        "usecases/worker",  # run --detach, answer, worker: the queue's use cases (issue 28)
    },
    "terminal/completion": set(),
    # What the views share: consoles, visible text, fitting. It knows no record.
    "terminal/render": set(),
    # The views, split by what they show (issue 23 item 5); each imports render and records.
    "terminal/ask": {"terminal/render", "domain/records", "store/base"},
    "terminal/describe": {"terminal/render", "domain/checkpoints"},
    "terminal/history_view": {"terminal/render", "terminal/describe", "store/base"},
    "terminal/json_forms": {"terminal/render", "domain/records", "domain/session", "store/base"},
    "terminal/notices": {"terminal/render", "domain/records"},
    "terminal/session_view": {"terminal/render", "domain/records"},
    "terminal/tables": {"terminal/render", "domain/records", "domain/session", "store/base"},
    # The run view and the JSON stream: the same events, drawn and written (issue 25).
    "terminal/run_view": {
        "terminal/render",
        "terminal/ask",
        "terminal/describe",
        "terminal/event_stream",
        "domain/records",
        "domain/session",
        "domain/checkpoints",
        "config",
    },
    "terminal/event_stream": {
        "terminal/render",
        "terminal/json_forms",
        "domain/records",
        "domain/session",
        "domain/checkpoints",
    },
    "terminal/tools_list": {"terminal/render", "domain/records"},
    "terminal/transcript": {"terminal/render", "domain/session", "loop/prompts"},
    "errors": set(),
    "domain/lifecycle": {"errors"},
    "domain/checkpoints": {"domain/lifecycle"},
    "domain/session": {"errors", "domain/lifecycle", "domain/checkpoints"},
    "domain/records": {"domain/session", "loop/context", "store/base"},
    "atomic": set(),
    "redact": set(),
}


@pytest.mark.parametrize("module", sorted(RULES))
def test_each_layer_imports_only_what_is_below_it(module: str) -> None:
    assert EVERY[module] <= RULES[module], (module, EVERY[module] - RULES[module])


# -- cli.py formats nothing: it parses, calls one use case and hands the result to a view ------

OUTPUT_CALLS = {
    "print",
    "pprint",
    "echo",
    "secho",
    "write",
    "writelines",
    "dumps",
    "dump",
    "print_json",
}
FORMATTERS = {"Table", "Text", "Panel", "Console", "Syntax", "Markdown", "Tree", "Columns"}
FORMATTING_IMPORTS = ("rich", "json", "pprint", "textwrap")


def formatting_in(source: str) -> list[str]:
    """Where a module formats output itself: a call to print, a stream's or console's
    print/write, typer.echo, json.dumps, a rich renderable; an import of rich or json; or
    text or a JSON form built for output (an f-string, `%`, `.format`, `.join`, a dict or list)
    passed to any call of a view module (render, notices, tables, ...). An error line may stay
    one call to render.error with its literal text."""
    tree = ast.parse(source)
    views = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "agentctl.terminal"
        for alias in node.names
    }

    def built(node: ast.AST) -> bool:
        """Text made here: an f-string, `"…" % x`, `"…".format(…)` or `"…".join(…)`; or a
        JSON form made here: a dict or list written out, or a comprehension."""
        for part in ast.walk(node):
            if isinstance(part, ast.JoinedStr | ast.Dict | ast.List | ast.ListComp | ast.DictComp):
                return True
            if (
                isinstance(part, ast.BinOp)
                and isinstance(part.op, ast.Mod | ast.Add)
                and any(
                    isinstance(s, ast.Constant) and isinstance(s.value, str)
                    for s in (part.left, part.right)
                )
            ):
                return True
            if (
                isinstance(part, ast.Call)
                and isinstance(part.func, ast.Attribute)
                and part.func.attr in ("format", "join")
            ):
                return True
        return False

    found = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for name in names:
                if name.split(".")[0] in FORMATTING_IMPORTS:
                    found.append(f"{where}: imports {name}")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (
            func.id
            if isinstance(func, ast.Name)
            else func.attr
            if isinstance(func, ast.Attribute)
            else ""
        )
        owner = (
            func.value.id
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            else None
        )
        if name in OUTPUT_CALLS:
            found.append(f"{where}: calls {name}")
        elif name in FORMATTERS:
            found.append(f"{where}: builds a {name}")
        elif owner in views and any(
            built(a) for a in [*node.args, *(k.value for k in node.keywords)]
        ):
            found.append(f"{where}: passes text it built to {owner}.{name}")
    return found


def test_cli_formats_nothing() -> None:
    """Issue 23 item 5: cli.py parses, calls one use case and hands the result to a view;
    every line it prints is made in a view module (so the run view, tables, a session's
    detail and the JSON forms each have a room of their own)."""
    assert not formatting_in((PACKAGE / "terminal" / "cli.py").read_text())


@pytest.mark.parametrize(
    "source",
    [
        "print(session_id)",
        "import sys\nsys.stdout.write(text)",
        "render.out.print('x')",
        "import json\njson.dumps(value)",
        "from rich.table import Table\nTable()",
        "from agentctl.terminal import render\nrender.note(f'deleted {ids}')",
        "from agentctl.terminal import render\nrender.note('tags: ' + ', '.join(tags))",
        "from agentctl.terminal import notices\nnotices.renamed(sid, '{}'.format(name))",
        "typer.echo('done')",
        "from agentctl.terminal import render\nrender.print_json(view)",
        "from agentctl.terminal import tables\ntables.rows([{'id': s.id} for s in rows])",
    ],
)
def test_the_formatting_check_sees_each_way_of_formatting(source: str) -> None:
    assert formatting_in(source)


def test_the_formatting_check_lets_a_view_call_and_an_error_line_pass() -> None:
    source = (
        "from agentctl.terminal import json_forms, render, tables\n"
        "if as_json:\n    json_forms.sessions(rows, queued)\n"
        "else:\n    tables.sessions_table(rows)\n"
        "render.error('prune needs --older-than AGE')\n"
    )
    assert formatting_in(source) == []


def test_nothing_but_the_terminal_face_imports_it() -> None:
    for module, imports in EVERY.items():
        if module.startswith("terminal/") or module == "__main__":
            continue
        assert not {i for i in imports if i.startswith("terminal/")}, module


def test_stores_import_only_the_bottom_and_each_other() -> None:
    for module, imports in EVERY.items():
        if module.startswith("store/"):
            outside = {i for i in imports if not i.startswith("store/")} - BOTTOM - {"config"}
            assert not outside, (module, outside)


def test_the_runner_reaches_model_store_and_tools_through_their_protocols() -> None:
    banned = {"config", "llm/scripted", "domain/tasks"}
    assert not {
        i for i in EVERY["loop/runner"] if i in banned or i.startswith(("usecases/", "terminal/"))
    }
    stores = {i for i in EVERY["loop/runner"] if i.startswith("store/")}
    # The protocol and its records (store/ready, store/listing: the caches, over the protocol).
    assert stores <= {"store/base", "store/lease", "store/ready", "store/listing"}, stores


def loaded_heavy_modules(command: list[str]) -> str:
    code = (
        "import sys, runpy; sys.argv = ['agentctl', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('agentctl', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "heavy = sorted(roots & {'openai', 'tiktoken', 'httpx2', 'httpx', 'pydantic', 'mcp'})\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=60
    )
    return proc.stderr


# pydantic too: `list` and `history` read index columns only (typer is capped below 0.29, whose
# parameter parsing imports pydantic).
@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["list"],
        ["list", "--json"],
        ["history", "nosuchsession"],
        ["config", "show"],
    ],
)
def test_commands_that_call_no_model_do_not_load_heavy_modules(command: list[str]) -> None:
    assert "HEAVY []" in loaded_heavy_modules(command)


def test_the_probe_does_see_openai_when_a_model_is_called() -> None:
    task = str(PACKAGE.parent / "sample_tasks" / "release_notes.toml")
    assert "'openai'" in loaded_heavy_modules(["run", task])


def loaded_before_first_request(command: list[str], env: dict[str, str]) -> set[str]:
    """What a real `agentctl` process (real HTTP to the scripted server) had imported when its
    first model request went out: top-level packages, and agentctl's modules."""
    code = (
        "import json, sys, runpy\n"
        "import agentctl.llm.openai_chat as llm\n"
        "seen = []\n"
        "original = llm.OpenAIModelClient._on_request\n"
        "def hook(self, request):\n"
        "    if not seen:\n"
        "        seen.append(sorted({m.split('.')[0] for m in sys.modules}\n"
        "                           | {m for m in sys.modules if m.startswith('agentctl.')}))\n"
        "    original(self, request)\n"
        "llm.OpenAIModelClient._on_request = hook\n"
        "sys.argv = ['agentctl', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('agentctl', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('LOADED', json.dumps(seen[0] if seen else None), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *command],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    line = next(x for x in proc.stderr.splitlines() if x.startswith("LOADED "))
    loaded = json.loads(line.removeprefix("LOADED "))
    assert loaded is not None, proc.stderr
    return set(loaded)


@pytest.mark.process
def test_run_sends_its_first_request_before_the_tokenizer_the_terminal_ui_or_the_loop_load(
    tmp_path: Path,
) -> None:
    """Issue 15: nothing on the way to the first request that the request does not need: the
    vocabulary (0.1-0.2 s) and rich load while the model thinks."""
    from agentctl.domain.session import ScriptTurn
    from agentctl.llm.scripted import ScriptedModel, ScriptedServer

    model = ScriptedModel(tuple(ScriptTurn(content="hi") for _ in range(4)))
    with ScriptedServer(model) as server:
        env = {
            **os.environ,
            "AGENTCTL_STORE": f"sqlite://{tmp_path / 'a.db'}",
            "AGENTCTL_HOME": str(tmp_path / "home"),
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-test",
        }
        work = tmp_path / "work"
        work.mkdir()
        loaded = loaded_before_first_request(
            ["run", "Say hi", "--model", "m", "--workspace", str(work), "--no-input"], env
        )
    assert "openai" in loaded  # the probe saw the request
    assert not loaded & {"tiktoken", "tiktoken_ext", "rich"}, sorted(loaded)
    # issue 26: the MCP SDK (about 1.35x openai's import) only for a task that uses a server
    assert not loaded & {"mcp", "mcp_types", "jsonschema"}, sorted(loaded)
    assert "agentctl.tools.mcp_client" not in loaded


# -- tools describe themselves: nothing outside tools/ knows a tool by its name (issue 23) -----


def tool_facts(tmp: Path) -> tuple[set[str], set[str]]:
    from agentctl.tools import work_tools
    from agentctl.tools.approval import ApprovalPolicy

    registry = work_tools(tmp, ApprovalPolicy())
    names = set(registry.names)
    keys: set[str] = set()
    for name in names:
        tool = registry.get(name)
        assert tool is not None
        keys |= set(tool.parameters.get("properties", {}))
    return names, keys


ARGUMENTS = {"arguments", "args"}  # how a call's arguments are named where they are passed


def name_tests(tree: ast.AST, names: set[str], keys: set[str]) -> list[str]:
    """Places that decide by a tool's name (`== "run_shell"`, `.startswith("mcp__")`, a name in
    a set tested with `in`) or by a tool's argument keys (`"command" in arguments`,
    `args["path"]`, `arguments.get("path")`)."""

    def tool_name(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value in names or node.value.startswith("mcp__")
        if isinstance(node, ast.Set | ast.List | ast.Tuple):
            return any(tool_name(e) for e in node.elts)
        return False

    def arguments(node: ast.AST) -> bool:
        while isinstance(node, ast.Attribute):
            if node.attr in ARGUMENTS:
                return True
            node = node.value
        return isinstance(node, ast.Name) and node.id in ARGUMENTS

    def key(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and node.value in keys

    found = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(tool_name(o) for o in operands):
                found.append(f"{where}: compares with a tool's name")
            if any(key(o) for o in operands) and any(arguments(o) for o in operands):
                found.append(f"{where}: tests a tool's argument key")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("startswith", "endswith", "removeprefix") and any(
                tool_name(a) for a in node.args
            ):
                found.append(f"{where}: tests a tool's name by its prefix")
            if node.func.attr == "get" and arguments(node.func.value) and any(map(key, node.args)):
                found.append(f"{where}: reads a tool's argument by its key")
            elif node.func.attr == "get" and any(tool_name(a) for a in node.args):
                found.append(f"{where}: looks a tool up by its name")
        elif isinstance(node, ast.Subscript) and arguments(node.value) and key(node.slice):
            found.append(f"{where}: reads a tool's argument by its key")
        elif isinstance(node, ast.MatchValue) and tool_name(node.value):
            found.append(f"{where}: matches a tool's name")
    return found


def test_nothing_outside_tools_tests_a_tools_name_or_its_argument_keys(tmp_path: Path) -> None:
    """Approval, time travel and rendering ask the tool (its subject, its effects); so a tool
    added to the registry, built in or from an MCP server, needs no edit anywhere else."""
    names, keys = tool_facts(tmp_path)
    assert {"run_shell", "write_file"} <= names
    assert {"command", "path"} <= keys
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("tools/"):
            continue
        found = name_tests(parsed(path), names, keys)
        if found:
            offenders[relative] = found
    assert not offenders, offenders


@pytest.mark.parametrize(
    "source",
    [
        'if call.name == "run_shell": pass',
        'x = "command" in arguments',
        'x = args["path"]',
        'x = event.arguments.get("command")',
        'x = d.tool.startswith("mcp__")',
        'x = name in {"read_file", "list_files"}',
        'shell = registry.get("run_shell")',
    ],
)
def test_the_name_test_sees_each_way_of_testing_a_name(source: str, tmp_path: Path) -> None:
    names, keys = tool_facts(tmp_path)
    assert name_tests(ast.parse(source), names, keys)


def test_one_module_appends_checkpoints_for_every_writer() -> None:
    """The journal, a rollback, an import and a move each appended on their own; now every
    append and every new session's first checkpoint goes through store/writes.py (the stores
    themselves, and the conformance spec that tests them, aside)."""
    call = re.compile(
        r"\.(?:append|create_session)\(\s*(?:self\.)?_?\w*(?:session|sid|info\b|\.id)"
    )
    writers = {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if call.search(p.read_text()) and p.parent.name not in ("store", "testing")
    }
    assert not writers, writers


# -- words: one meaning each (issue 23 item 6; the glossary in README's Layout) ---------------


def class_fields() -> dict[str, dict[str, str]]:
    """Every class of agentctl (qualified by its module) and the names it annotates in its
    body (a dataclass's or a pydantic model's fields, a NamedTuple's), each with its type."""
    found: dict[str, dict[str, str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = path.relative_to(PACKAGE).as_posix().removesuffix(".py")
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.ClassDef):
                found[f"{module}.{node.name}"] = {
                    item.target.id: ast.unparse(item.annotation)
                    for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                }
    return found


def test_one_record_says_how_a_run_ended() -> None:
    """RunResult (the runner's) and RunReport (the use cases') were one thing twice."""
    ended = sorted(
        name for name, fields in class_fields().items() if {"stop", "session"} <= set(fields)
    )
    assert ended == ["domain/records.RunReport"], ended


def test_kind_means_a_checkpoint_kind() -> None:
    """`kind` is what a checkpoint records (CheckpointKind; a store's row holds its value as
    text); a tool's subject has a type, a setting a value type, a scripted fault a mode.
    PendingQuestion.kind is a stored field name (a format, kept)."""
    classes = class_fields()
    other = {
        name
        for name, fields in classes.items()
        if "kind" in fields
        and "CheckpointKind" not in fields["kind"]
        and not name.split(".")[-1].startswith("Checkpoint")
    }
    assert other == {"domain/session.PendingQuestion"}, other
    enums = [name for name in classes if name.endswith("Kind")]
    assert enums == ["domain/lifecycle.CheckpointKind"], enums


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next((e for e in edges if e in graph), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def run_time_imports(path: Path) -> set[str]:
    """A module's imports that load code: at the top and inside functions (lazy ones), not
    those under `if TYPE_CHECKING:`, which name a type for the checker and load nothing."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if is_package(node.module):
                found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(parsed(path))
    return found


def test_no_import_cycles_anywhere_lazy_imports_included() -> None:
    """Issue 23 item 5: a module's imports, at the top or inside a function, never lead back
    to it. A package's __init__ counts as the package."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = path.relative_to(PACKAGE).as_posix().removesuffix(".py").removesuffix("/__init__")
        graph[name] = {i.removesuffix("/__init__") for i in ours(run_time_imports(path))} - {name}
    assert cycles(graph) == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# The middle layers (issue 23 item 5): from the bottom up, the domain model; the adapters beside
# one another (stores, tools, model adapters, the workspace's snapshots); the loop; the use
# cases; the terminal face on top. A layer never imports one above it.
ABOVE = {
    "domain/": ("loop/", "usecases/", "terminal/", "llm/", "tools/", "workspace/", "store/"),
    "store/": ("loop/", "usecases/", "terminal/", "llm/", "tools/", "workspace/"),
    "tools/": ("loop/", "usecases/", "terminal/", "llm/", "store/", "workspace/"),
    "llm/": ("usecases/", "terminal/", "tools/", "store/", "workspace/"),
    "workspace/": ("loop/", "usecases/", "terminal/", "llm/", "tools/"),
    "loop/": (
        "usecases/",
        "terminal/",
        "llm/scripted",
        "llm/openai_chat",
        "config",
        "domain/tasks",
    ),
    "usecases/": ("terminal/",),
}
# Known exceptions, each a type the layer above owns that a record names (type-only imports).
EXCEPT = {
    ("domain/records", "store/base"),  # SessionSummary: the list rows a use case returns
    ("domain/records", "loop/context"),  # Budget: the context figures `show` reports
    ("llm/scripted", "loop/prompts"),  # the scripted model answers the protocol's own words
}


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_each_middle_layer_imports_nothing_above_it(layer: str) -> None:
    wrong = {
        (module, i)
        for module, imports in EVERY.items()
        if module.startswith(layer)
        for i in imports
        if i.startswith(ABOVE[layer]) and (module, i) not in EXCEPT
    }
    assert not wrong, sorted(wrong)


def wire_wrappers(tree: ast.AST) -> list[int]:
    """Lines that build or read OpenAI's `{"type": "function", "function": {...}}` wrapper:
    the string "function" as a dict key, a subscript, a `.get` argument or a field name."""
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value == "function"
    )


def test_only_the_model_adapters_know_openais_function_wrapper() -> None:
    """Tools, control tools, the registry, the runner, token counts and `agentctl tools` /
    `mcp check` hold a neutral ToolSpec (issue 23 item 2); only llm/ (chat_form.py, which the
    OpenAI adapter sends and the count counts, and the scripted server that parses the wire as
    any server does) words or reads the wrapper."""
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("llm/"):
            continue
        lines = wire_wrappers(parsed(path))
        if lines:
            offenders[relative] = lines
    assert not offenders, offenders


@pytest.mark.parametrize(
    "source",
    [
        'x = {"type": "function", "function": {"name": n}}',
        'name = schema["function"]["name"]',
        'f = call.get("function") or {}',
        'FIELDS = ("id", "type", "function")',
    ],
)
def test_the_wrapper_check_sees_each_way_of_using_it(source: str) -> None:
    assert wire_wrappers(ast.parse(source))
