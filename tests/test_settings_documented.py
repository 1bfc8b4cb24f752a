"""Every environment variable the settings read is in README.md's configuration table, with the
default the code uses, and every variable the table names is read.

The settings modules (and the recognizer's runtime, which reads its own variables at import) are
parsed, not imported: a variable read only on one branch (the production settings' ``required``,
``MASKNET_SINGLE_NODE``) counts too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SETTINGS = REPO / "masknet_site" / "settings"
# besides the settings modules: read at import by the recognizer's processes (thread counts, runtime)
OTHER_READERS = [REPO / "recognition" / "engine" / "runtime.py"]
# functions whose first argument is a variable's name and whose second (if any) is its default
READ_HELPERS = {"env", "env_bool", "env_switch", "env_int", "env_float", "env_list", "required",
                "_env_threads", "log_level"}
# the module whose reads win: the development settings are the default DJANGO_SETTINGS_MODULE and
# star-import base, so the table's defaults are theirs (prod- or test-only variables: their own)
PRECEDENCE = ["dev.py", "base.py", "prod.py", "test.py", "runtime.py"]

# In the table but read by no module parsed here (justified exceptions only).
NOT_READ_BY_SETTINGS = {
    # read by Django itself; manage.py, asgi.py and celery.py default it to masknet_site.settings.dev
    "DJANGO_SETTINGS_MODULE",
}
# Read, but the table gives the default in words, not as the code's literal.
DEFAULT_IN_WORDS = {
    "DJANGO_SECRET_KEY": "dev-only key: the development settings' public key, not to be printed here",
    "MASKNET_KIOSK_NOTICE": "empty in the code: the kiosk's built-in line, quoted in the table",
    "MASKNET_MODEL_THREADS": "0 in the code: the cores, at most 4",
    "DATABASE_URL": "an absolute sqlite:/// path to the checkout's db.sqlite3",
}
# what a helper falls back to when called without a default
HELPER_DEFAULTS = {"env_bool": False, "env_list": ""}
UNITS = {"KiB": 1024, "MiB": 1024 ** 2}
WORDS = {"unset": None, "off": False, "on": True}


def _literal(node: ast.expr | None) -> object:
    """The value of a default as written in a settings module; ``ValueError`` when it is computed."""
    if node is None:
        return None
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        if isinstance(node.right, ast.Name):   # 10 * MASKNET_LOGIN_MAX_FAILURES, as the table writes it
            return f"{_literal(node.left)} × {node.right.id}"
        return _literal(node.left) * _literal(node.right)
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "str" and len(node.args) == 1:
        return _literal(node.args[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):   # BASE_DIR / "var" / "media"
        left = node.left
        if isinstance(left, ast.Name) and left.id == "BASE_DIR":
            return "./" + _literal(node.right)
        return f"{_literal(left)}/{_literal(node.right)}"
    raise ValueError(ast.dump(node))


def settings_reads() -> dict[str, tuple[str, object]]:
    """Each variable read: the module whose read wins (PRECEDENCE) and its default
    (``ValueError`` where the default is computed; ``None`` where there is none)."""
    found: dict[str, list[tuple[str, object]]] = {}
    for path in [*sorted(SETTINGS.glob("*.py")), *OTHER_READERS]:
        module = ast.parse(path.read_text())
        for node in ast.walk(module):
            if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
                continue
            func = node.func
            helper = isinstance(func, ast.Name) and func.id in READ_HELPERS
            environ_get = (isinstance(func, ast.Attribute) and func.attr == "get"
                           and ast.unparse(func.value) == "os.environ")
            if not (helper or environ_get or ast.unparse(func) == "os.getenv"):
                continue
            default_node = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "default"), None)
            try:
                default = (_literal(default_node) if default_node is not None
                           else HELPER_DEFAULTS.get(getattr(func, "id", ""), None))
            except (ValueError, TypeError) as error:
                default = ValueError(str(error))
            found.setdefault(node.args[0].value, []).append((path.name, default))
    return {name: min(reads, key=lambda read: PRECEDENCE.index(read[0])) for name, reads in found.items()}


def readme_table() -> dict[str, str]:
    """The configuration table: each variable named in a row's first cell, with its default (a
    row of ``A`` / ``B`` and ``x / y`` gives each its own)."""
    text = README.read_text()
    section = text.split("## Configuration (environment variables)", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0])
        defaults = cells[1].split(" / ") if len(names) > 1 else [cells[1]]
        assert len(defaults) == len(names), f"README row {cells[0]}: one default per variable"
        rows.update(zip(names, defaults, strict=True))
    return rows


def plumbing_paragraph() -> str:
    """The README's paragraph that names the test plumbing variables (not settings for a site)."""
    return next(p for p in README.read_text().split("\n\n") if "test plumbing" in p)


def _documented_value(text: str) -> object:
    """A table default as a value: ``512 KiB``, ``4096×4096``, ``off``, ``unset``, ``./var/media``;
    a parenthesis after it is a note."""
    text = re.sub(r"\s*\(.*\)$", "", text).replace("`", "").strip()
    if text in WORDS:
        return WORDS[text]
    if match := re.fullmatch(r"(\d+) (KiB|MiB)", text):
        return int(match[1]) * UNITS[match[2]]
    if match := re.fullmatch(r"(\d+)×(\d+)", text):
        return int(match[1]) * int(match[2])
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def test_every_variable_the_settings_read_is_documented():
    reads, table = settings_reads(), readme_table()
    plumbing = plumbing_paragraph()
    missing = sorted(name for name in reads if name not in table
                     and not (name.startswith("MASKNET_TEST_") and f"`{name}`" in plumbing))
    assert not missing, f"read by the settings, not in README.md's configuration table: {missing}"


def test_every_variable_the_readme_table_names_is_read():
    reads = settings_reads()
    unread = sorted(name for name in readme_table() if name not in reads and name not in NOT_READ_BY_SETTINGS)
    assert not unread, f"in README.md's configuration table, read by no settings module: {unread}"
    assert NOT_READ_BY_SETTINGS.isdisjoint(reads), "an exception that is read now: drop it from the list"


def test_the_readme_table_gives_the_defaults_the_code_uses():
    reads, table = settings_reads(), readme_table()
    wrong, in_words = [], set()
    for name, documented in table.items():
        if name not in reads:
            continue
        module, default = reads[name]
        if isinstance(default, ValueError) or name in DEFAULT_IN_WORDS:
            in_words.add(name)
            continue
        value = _documented_value(documented)
        if default in ("", None) and value is None:
            continue
        if value != default:   # 3 == 3.0: a float setting's whole-number default reads as written
            wrong.append(f"{name}: README says {documented!r}, {module} uses {default!r}")
    assert not wrong, "\n".join(wrong)
    # a default that cannot be compared is listed, with why, rather than skipped in silence
    assert in_words == set(DEFAULT_IN_WORDS), sorted(in_words ^ set(DEFAULT_IN_WORDS))


def test_no_document_gives_two_sections_one_heading():
    """docs/performance.md said "### Enrollment throughput" twice in a row (a section inserted
    before it kept a copy of its heading): an empty section, and links to the heading went to that
    one. Each heading of README.md and docs/*.md is its document's only one of that text."""
    for doc in [README, *sorted((REPO / "docs").glob("*.md"))]:
        text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.MULTILINE | re.DOTALL)   # not code comments
        headings = re.findall(r"^#{1,6} .*$", text, re.MULTILINE)
        twice = sorted({h for h in headings if headings.count(h) > 1})
        assert not twice, f"{doc.name}: {twice}"


def test_no_documents_table_row_is_broken_across_lines():
    """docs/security.md's first row of who reaches what was written over two lines (a sentence
    wrapped inside it): Markdown ends a row at its line's end, so the row lost its "cannot" cell and
    the rest of it became a row of its own. A line after a table row is another row or blank."""
    for doc in [README, *sorted((REPO / "docs").glob("*.md"))]:
        text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.MULTILINE | re.DOTALL)   # not code blocks
        lines = text.splitlines()
        broken = [b[:60] for a, b in zip(lines, lines[1:], strict=False)
                  if a.startswith("|") and b.strip() and not b.startswith("|")]
        assert not broken, f"{doc.name}: {broken}"


def test_no_variable_documented_or_read_is_taken_for_a_misspelling():
    """``manage.py check`` warns (``masknet.W006``) of a ``MASKNET_*`` variable MaskNet does not read:
    none it documents, and none the settings read, may be taken for one; a misspelt one is, with the
    name it is closest to."""
    from masknet_site.env_names import unknown_names

    documented = set(readme_table()) | set(re.findall(r"`(MASKNET_[A-Z0-9_]+)`", plumbing_paragraph()))
    assert unknown_names(documented | set(settings_reads())) == []
    assert unknown_names(["MASKNET_GALERY_ADAPT", "MASKNET_NO_SUCH_THING", "MASKNET_TEST_ANYTHING", "PATH"]) == [
        ("MASKNET_GALERY_ADAPT", "MASKNET_GALLERY_ADAPT"), ("MASKNET_NO_SUCH_THING", None)]


def test_manage_py_check_names_a_misspelt_variable(monkeypatch):
    """The warning as ``manage.py check`` prints it: the name set, and the one meant."""
    from django.core import checks

    from recognition.checks import unknown_environment

    def about_it() -> list[checks.CheckMessage]:   # whatever else this machine's environment holds
        return [w for w in unknown_environment() if w.msg.startswith("MASKNET_GALERY_ADAPT ")]

    monkeypatch.setenv("MASKNET_GALERY_ADAPT", "1")
    (warning,) = about_it()
    assert isinstance(warning, checks.Warning) and warning.id == "masknet.W006"
    assert warning.msg == "MASKNET_GALERY_ADAPT is set, but MaskNet reads no variable of that name: it has no effect"
    assert warning.hint == "did you mean MASKNET_GALLERY_ADAPT?"
    monkeypatch.delenv("MASKNET_GALERY_ADAPT")
    assert about_it() == []
