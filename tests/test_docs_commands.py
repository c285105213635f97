"""The README's quick start and the commands in docs/ stay true.

README.md and docs/*.md are read as text and checked against what the project
is: the two quick-start commands against pyproject.toml and .ci/run, every
``--option`` against the ``--help`` of the program it is given to, every
``python -m X`` against an importable X, every relative link and anchor
against the files and their headings, and every import against the
dependency list (the server's own, or the test extra).
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the test extra brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Tools of the test extra that the server must never need.
DEV_TOOLS = {"pytest", "ruff", "mypy", "locust", "playwright", "hypothesis", "pexpect"}

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_DASH_M = re.compile(r"\bpython3? -m ([\w.]+)")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def fenced(text: str, lang: str = "sh") -> list[str]:
    """The bodies of the fenced code blocks in ``text`` of language ``lang``."""
    return [body for tag, body in _FENCE.findall(text) if tag == lang]


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next heading of that level."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def quick_start() -> tuple[list[str], list[str]]:
    """The README's two quick-start commands, each split into its ``&&`` steps."""
    blocks = fenced(section(README.read_text(), "Quick start"))
    assert len(blocks) == 2, f"the quick start should show two commands, not {len(blocks)}"
    server, tests = ([step.strip() for step in block.strip().split("&&")] for block in blocks)
    return server, tests


def pip_install_args(step: str) -> list[str]:
    """The arguments of a ``pip install`` step, quiet flags left out."""
    words = shlex.split(step)
    assert words[0].endswith("/pip"), step
    assert words[1] == "install", step
    return [w for w in words[2:] if w not in ("-q", "--quiet")]


def ci_install_args() -> list[str]:
    """What .ci/run installs into its fresh virtualenv (pip's own upgrade aside)."""
    steps = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.startswith('"$venv/bin/pip" install') and "--upgrade pip" not in line
    ]
    assert len(steps) == 1, f".ci/run should install once, with the README's command: {steps}"
    return pip_install_args(steps[0].replace('"$venv/bin/pip"', "venv/bin/pip"))


def test_server_command_installs_only_the_runtime_and_runs_an_installed_script() -> None:
    server, _ = quick_start()
    assert server[0] == "python3 -m venv .venv"
    assert pip_install_args(server[1]) == ["."], "the server's install must not pull in the test extra"
    script = shlex.split(server[2])[0]
    assert script.startswith(".venv/bin/"), script
    assert PYPROJECT["project"]["scripts"].get(script.removeprefix(".venv/bin/")) == (
        "gevent_chat.server.app:main"
    )
    runtime = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    assert not runtime & DEV_TOOLS, f"test tools among the server's dependencies: {runtime & DEV_TOOLS}"


def test_test_command_is_what_ci_runs() -> None:
    _, tests = quick_start()
    assert tests[0] == "python3 -m venv .venv"
    assert pip_install_args(tests[1]) == ci_install_args()
    assert shlex.split(tests[2]) == [".venv/bin/python", "-m", "pytest"]
    assert '"$venv/bin/python" -m pytest' in (ROOT / ".ci" / "run").read_text().splitlines()
    extras = PYPROJECT["project"]["optional-dependencies"]
    spec = pip_install_args(tests[1])[-1]
    named = re.fullmatch(r"\.\[([\w,-]+)\]", spec)
    assert named, f"the test install should name an extra of this project: {spec}"
    for extra in named.group(1).split(","):
        assert extra in extras, f"no extra {extra!r} in pyproject.toml"


def test_no_second_dependency_list() -> None:
    assert not (ROOT / "requirements.txt").exists(), "pyproject.toml is the one list of dependencies"


@pytest.mark.parametrize("script", ["gevent-chat-server", "gevent-chat"])
def test_console_scripts_resolve(script: str) -> None:
    module, _, attr = PYPROJECT["project"]["scripts"][script].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


@pytest.mark.parametrize("script", ["gevent-chat-server", "gevent-chat"])
def test_installed_scripts_run(script: str) -> None:
    """The quick start's `pip install` puts both programs beside the venv's python."""
    path = Path(sys.executable).parent / script
    if not path.exists():
        reason = f"{script} is not installed beside {sys.executable} (pip install -e '.[test]')"
        if os.environ.get("GEVENT_CHAT_REQUIRE_ALL") == "1":
            pytest.fail(f"{reason}; GEVENT_CHAT_REQUIRE_ALL=1")
        pytest.skip(reason)
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, done.stdout) == (0, f"gevent-chat {PYPROJECT['project']['version']}\n")


# --- imports against the dependency lists -------------------------------------------------------


def _imports(folder: Path) -> set[str]:
    """Top-level names of the absolute imports in every .py file under ``folder``."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _closure(requirements: list[str]) -> set[str]:
    """The distributions ``requirements`` bring, their own requirements included."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            todo.extend(Requirement(r) for r in importlib.metadata.requires(req.name) or [])
        except importlib.metadata.PackageNotFoundError:
            pass
    return seen


def _undeclared(folder: Path, requirements: list[str]) -> dict[str, list[str]]:
    """Third-party imports under ``folder`` that ``requirements`` do not bring, with their owners."""
    allowed = _closure(requirements)
    # Declared for other Pythons only (tomli before 3.11): imported behind a version check.
    elsewhere = {
        canonicalize_name(r.name)
        for r in map(Requirement, requirements)
        if r.marker is not None and not r.marker.evaluate({"extra": ""})
    }
    local = {p.stem for d in (ROOT, ROOT / "loadtest", ROOT / "tests") for p in d.iterdir()}
    dists = importlib.metadata.packages_distributions()
    wrong: dict[str, list[str]] = {}
    for name in sorted(_imports(folder) - set(sys.stdlib_module_names) - local - {"__future__"}):
        owners = [canonicalize_name(d) for d in dists.get(name, [])]
        if not set(owners) & allowed and canonicalize_name(name) not in elsewhere:
            wrong[name] = owners
    return wrong


def test_server_imports_only_runtime_dependencies() -> None:
    assert _undeclared(ROOT / "gevent_chat", PYPROJECT["project"]["dependencies"]) == {}


def test_tests_and_load_tools_import_only_declared_dependencies() -> None:
    project = PYPROJECT["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    assert _undeclared(ROOT / "tests", declared) == {}
    assert _undeclared(ROOT / "loadtest", declared) == {}


# --- commands and options named in the docs -----------------------------------------------------


def test_every_module_run_with_dash_m_imports() -> None:
    modules = {m for doc in DOC_FILES for m in _DASH_M.findall(doc.read_text())}
    assert {"gevent_chat.server", "gevent_chat.client", "pytest"} <= modules
    missing = [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
    assert missing == []


@functools.cache
def help_options(*command: str) -> frozenset[str]:
    """The ``--options`` a program lists in its ``--help``."""
    done = subprocess.run(
        [*command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return frozenset(_OPTION.findall(done.stdout))


def module_options(module: str) -> frozenset[str]:
    return help_options(sys.executable, "-m", module)


def locust_options() -> frozenset[str]:
    """locust's own options and those the chat locustfiles add (locust#2917 hides these)."""
    added: set[str] = set()
    for name in ("locustfile.py", "stepped.py"):
        added.update(re.findall(r'add_argument\(\s*"(--[a-z-]+)"', (ROOT / "loadtest" / name).read_text()))
    assert added
    return help_options(sys.executable, "-m", "locust") | added


SCRIPTS = {"gevent-chat-server": "gevent_chat.server", "gevent-chat": "gevent_chat.client"}


def _commands() -> list[tuple[Path, str]]:
    """Every shell line of every sh block, backslash continuations joined."""
    lines = []
    for doc in DOC_FILES:
        for block in fenced(doc.read_text()):
            lines += [(doc, line) for line in block.replace("\\\n", " ").splitlines()]
    return lines


@pytest.mark.timeout(120)  # each --help starts a Python that imports gevent (locust: much more)
def test_options_given_to_our_programs_exist() -> None:
    checked = 0
    wrong = []
    for doc, line in _commands():
        # A pipe between commands, not one inside a usage line's [--a | --b].
        for segment in re.split(r"&&|\|(?![^\[]*\])", line):
            words = segment.split()
            if m := re.search(r"-m ((?:gevent_chat|loadtest)\.[\w.]+)", segment):
                known = module_options(m.group(1))
            elif words and Path(words[0]).name in SCRIPTS:
                known = module_options(SCRIPTS[Path(words[0]).name])
            elif words and Path(words[0]).name == "locust":
                known = locust_options()
            else:
                continue
            checked += 1
            wrong += [
                f"{doc.name}: {opt} in {segment.strip()!r}"
                for opt in _OPTION.findall(segment)
                if opt not in known
            ]
    assert checked >= 12, checked
    assert wrong == []


@pytest.mark.timeout(120)  # as above
def test_options_named_in_prose_exist() -> None:
    known = locust_options() | {"--help"}
    for module in [*SCRIPTS.values(), "loadtest.fanout", "loadtest.cluster", "loadtest.compare"]:
        known |= module_options(module)
    known |= module_options("loadtest.delivery")
    # Inline code that is an option, or a command line of ours; not `brew --prefix`.
    ours = re.compile(r"^--|-m (gevent_chat|loadtest)|gevent-chat|locust ")
    spans = [
        (doc, span)
        for doc in DOC_FILES
        for span in re.findall(r"`([^`\n]+)`", re.sub(_FENCE, "", doc.read_text()))
        if ours.search(span)
    ]
    assert len(spans) > 100
    wrong = [
        f"{doc.name}: {opt} in {span!r}"
        for doc, span in spans
        for opt in _OPTION.findall(span)
        if opt not in known and not span.startswith(f"{opt}*")  # `--step-*`: a family
    ]
    assert wrong == []


@pytest.mark.timeout(60)  # two --help runs
def test_every_option_is_documented() -> None:
    options_doc = (ROOT / "docs" / "options.md").read_text()
    client_docs = (ROOT / "docs" / "client.md").read_text() + (ROOT / "docs" / "tls.md").read_text()
    assert sorted(module_options("gevent_chat.server") - {"--help"} - set(_OPTION.findall(options_doc))) == []
    assert sorted(module_options("gevent_chat.client") - {"--help"} - set(_OPTION.findall(client_docs))) == []


# --- links --------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(_FENCE, "", path.read_text())
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_relative_links_and_anchors_resolve() -> None:
    readme_links = _LINK.findall(README.read_text())
    assert sum(link.startswith("docs/") for link in readme_links) >= 8
    broken = []
    for doc in DOC_FILES:
        for link in _LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", link):
                continue
            target, _, anchor = link.partition("#")
            path = (doc.parent / target) if target else doc
            if not path.exists():
                broken.append(f"{doc.name}: {link} (no such file)")
            elif anchor and anchor not in anchors(path):
                broken.append(f"{doc.name}: {link} (no such heading)")
    assert broken == []
