"""ax-lsp driven by pytest-lsp's client through the real binary: initialize,
inlay hints, hover, diagnostics (also for files not open), code lenses, code
actions, completion, settings, and a profile rewritten during the session.

Lines are found from the source text (`fn count_words`), never hard-coded.
"""

import asyncio
import json
import os
import re
from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import CALLS, profile_crate


def uri(path: Path) -> str:
    return path.resolve().as_uri()


def line_of(path: Path, needle: str) -> int:
    for n, text in enumerate(path.read_text().splitlines()):
        if needle in text:
            return n
    raise AssertionError(f"{needle!r} not in {path}")


async def start(client: LanguageClient, crate: Path, options=None) -> types.InitializeResult:
    markdown = [types.MarkupKind.Markdown]
    caps = types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(
            completion=types.CompletionClientCapabilities(
                completion_item=types.ClientCompletionItemOptions(documentation_format=markdown)
            ),
            hover=types.HoverClientCapabilities(content_format=markdown),
        ),
        workspace=types.WorkspaceClientCapabilities(
            inlay_hint=types.InlayHintWorkspaceClientCapabilities(refresh_support=True),
            code_lens=types.CodeLensWorkspaceClientCapabilities(refresh_support=True),
        )
    )
    return await client.initialize_session(
        types.InitializeParams(
            capabilities=caps,
            root_uri=uri(crate),
            workspace_folders=[types.WorkspaceFolder(uri=uri(crate), name="word-count")],
            initialization_options=options,
        )
    )


def open_file(client: LanguageClient, path: Path, text=None):
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(
                uri=uri(path),
                language_id="toml" if path.suffix == ".toml" else "rust",
                version=1,
                text=text if text is not None else path.read_text(),
            )
        )
    )


async def until(predicate, what: str, timeout=10.0):
    """Waits until predicate() is truthy (the server pushes asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def diags(client: LanguageClient, path: Path):
    return list(client.diagnostics.get(uri(path), []))


async def hints(client: LanguageClient, path: Path):
    end = len(path.read_text().splitlines()) + 10
    return await client.text_document_inlay_hint_async(
        types.InlayHintParams(
            text_document=types.TextDocumentIdentifier(uri=uri(path)),
            range=types.Range(types.Position(0, 0), types.Position(end, 0)),
        )
    )


HINT = re.compile(r"^p50 [\d.]+ (ns|µs|ms|s) · p95 [\d.]+ (ns|µs|ms|s) · (\d+) calls · [\d.<]+% of profile$")


async def test_initialize_advertises_features(client: LanguageClient, crate: Path):
    result = await start(client, crate)
    caps = result.capabilities
    assert caps.inlay_hint_provider
    assert caps.hover_provider
    assert caps.code_lens_provider is not None
    assert caps.code_action_provider
    assert list(caps.execute_command_provider.commands) == ["ax-lsp.acceptBaseline"], "the one command ax-lsp runs itself"
    assert result.server_info.name == "ax-lsp"


async def test_inlay_hints_on_profiled_functions(client: LanguageClient, crate: Path):
    await start(client, crate)
    lib = crate / "src" / "lib.rs"
    open_file(client, lib)
    got = await hints(client, lib)
    by_line = {h.position.line: h.label for h in got}
    for name in ["fn count(", "fn count_words(", "fn is_word("]:
        line = line_of(lib, name)
        assert line in by_line, f"no hint on {name} (line {line}): {by_line}"
        m = HINT.match(by_line[line])
        assert m, by_line[line]
        assert m.group(3) == ("15" if name == "fn is_word(" else "3"), by_line[line]
        assert got[0].position.character > 0, "at the end of the signature line"


async def test_hints_follow_edits_and_hover_says_source_changed(client: LanguageClient, crate: Path):
    await start(client, crate)
    lib = crate / "src" / "lib.rs"
    open_file(client, lib)
    text = "// a\n// b\n// c\n" + lib.read_text()
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri(lib), version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )
    got = await hints(client, lib)
    lines = {h.position.line for h in got}
    assert line_of(lib, "fn count_words(") + 3 in lines, lines
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri(lib)), types.Position(line_of(lib, "fn count_words(") + 3, 5))
    )
    assert "source changed since profiling" in hover.contents.value, hover.contents.value


async def test_hover_shows_the_full_table(client: LanguageClient, crate: Path):
    await start(client, crate)
    lib = crate / "src" / "lib.rs"
    open_file(client, lib)
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri(lib)), types.Position(line_of(lib, "fn count_words("), 4))
    )
    md = hover.contents.value
    for needle in ["`count_words`", "| calls | 3 |", "| total |", "| self |", "| CPU |", "| allocated |",
                   "| p50 |", "| p90 |", "| p95 |", "| p99 |", "| max |", "| budget | 1 ns ([budget.functions]",
                   "▕", "Profile taken", "ax run --profile"]:
        assert needle in md, f"{needle!r} missing from hover:\n{md}"
    probe = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri(lib)), types.Position(line_of(lib, "probe!("), 10))
    )
    assert "| hits | 3 |" in probe.contents.value, probe.contents.value


async def test_diagnostics_budget_hot_spots_and_manifest_not_open(client: LanguageClient, crate: Path):
    await start(client, crate)
    lib = crate / "src" / "lib.rs"
    manifest = crate / "ax-plugin.toml"
    # Published without opening anything: the Problems view lists them.
    got = await until(lambda: diags(client, lib), "diagnostics of lib.rs (not open)")
    over = [d for d in got if d.severity == types.DiagnosticSeverity.Warning]
    assert any("`count_words`: p95" in d.message and "over its budget 1 ns" in d.message for d in over), got
    assert over[0].range.start.line == line_of(lib, "fn count_words(")
    hot = [d for d in got if d.severity == types.DiagnosticSeverity.Information]
    assert any(d.message.startswith("hot spot #1:") for d in hot), got
    assert all(d.source == "ax" for d in got)
    mdiags = await until(lambda: diags(client, manifest), "diagnostics of ax-plugin.toml (not open)")
    startup = [d for d in mdiags if d.code == "startup"]
    assert startup, mdiags
    assert any(d.range.start.line == line_of(manifest, "max_phase") for d in startup), startup


async def test_manifest_schema_error_and_misspelt_key_fix(client: LanguageClient, crate: Path):
    await start(client, crate)
    manifest = crate / "ax-plugin.toml"
    text = manifest.read_text().replace("library =", "libary =")
    open_file(client, manifest, text)
    got = await until(lambda: [d for d in diags(client, manifest) if d.code == "schema"], "schema diagnostic")
    d = got[0]
    assert "unknown field `libary`" in d.message
    assert d.range.start.line == 3 and (d.range.start.character, d.range.end.character) == (0, 6), d.range
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri(manifest)),
            range=d.range,
            context=types.CodeActionContext(diagnostics=[d]),
        )
    )
    fix = [a for a in actions if a.title == "Change `libary` to `library`"]
    assert fix, [a.title for a in actions]
    edit = fix[0].edit.changes[uri(manifest)][0]
    assert edit.new_text == "library"


async def test_code_actions_budget_and_lazy(client: LanguageClient, crate: Path):
    await start(client, crate)
    lib = crate / "src" / "lib.rs"
    manifest = crate / "ax-plugin.toml"
    open_file(client, lib)
    line = line_of(lib, "fn count_words(")
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri(lib)),
            range=types.Range(types.Position(line, 0), types.Position(line, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    budget = [a for a in actions if a.title.startswith("Set a budget for `count_words`")]
    assert budget, [a.title for a in actions]
    edit = budget[0].edit.changes[uri(manifest)][0]
    assert edit.range.start.line == line_of(manifest, "count_words =")
    assert re.fullmatch(r'"\d+(ns|us|ms|s)"', edit.new_text), edit.new_text

    open_file(client, manifest)
    at = line_of(manifest, "max_phase")
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri(manifest)),
            range=types.Range(types.Position(at, 0), types.Position(at, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    titles = [a.title for a in actions]
    lazy = [a for a in actions if a.title.startswith("Load the plugin lazily")]
    assert lazy, titles
    edit = lazy[0].edit.changes[uri(manifest)][0]
    assert edit.new_text == "lazy = true\n" and edit.range.start.line == line_of(manifest, "library =") + 1
    assert any(t.startswith("Accept the measured cost: startup.max_phase") for t in titles), titles


async def test_code_lenses_carry_client_commands(client: LanguageClient, crate: Path):
    await start(client, crate)
    lib = crate / "src" / "lib.rs"
    manifest = crate / "ax-plugin.toml"
    open_file(client, lib)
    open_file(client, manifest)
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(types.TextDocumentIdentifier(uri(lib))))
    commands = {l.command.command for l in lenses}
    assert commands == {"ax.profile", "ax.openFlamegraph"}, commands
    profile = [l for l in lenses if l.command.command == "ax.profile"]
    assert any(re.match(r"^hot spot #1, [\d.<]+% self of profile · profile again$", l.command.title) for l in profile), [
        l.command.title for l in profile
    ]
    assert list(profile[0].command.arguments) == [str(crate.resolve())]
    flame = [l for l in lenses if l.command.command == "ax.openFlamegraph"][0]
    assert list(flame.command.arguments) == [str((crate / ".ax" / "profile.json").resolve())]

    lenses = await client.text_document_code_lens_async(types.CodeLensParams(types.TextDocumentIdentifier(uri(manifest))))
    assert all(l.range.start.line == line_of(manifest, "[plugin]") for l in lenses)
    startup = [l for l in lenses if l.command.title.startswith("startup ")]
    assert startup and "init " in startup[0].command.title and "dlopen " in startup[0].command.title, lenses
    assert {l.command.command for l in lenses} == {"ax.profile", "ax.openFlamegraph", "ax.run"}


async def test_manifest_completion_and_hover(client: LanguageClient, crate: Path):
    await start(client, crate)
    manifest = crate / "ax-plugin.toml"
    text = manifest.read_text() + "\n[reload]\n\n"
    open_file(client, manifest, text)
    line = len(text.splitlines())
    items = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri(manifest)), types.Position(line, 0))
    )
    labels = {i.label for i in items}
    assert labels == {"debounce", "init_timeout", "drain_timeout"}, labels
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri(manifest)), types.Position(line_of(manifest, "max_duration"), 3))
    )
    assert "Wall time a call may take" in hover.contents.value


async def test_settings_change_the_hint_format(client: LanguageClient, crate: Path):
    await start(client, crate, {"inlayHints": {"percentiles": ["max", "p99"], "calls": False, "share": "none"},
                                "hotSpot": 3})
    lib = crate / "src" / "lib.rs"
    open_file(client, lib)
    got = await hints(client, lib)
    label = [h.label for h in got if h.position.line == line_of(lib, "fn count_words(")][0]
    assert re.fullmatch(r"p99 [\d.]+ \S+ · max [\d.]+ \S+", label), label
    await until(lambda: any('"hotSpot"' in m.message for m in client.log_messages), "a warning about hotSpot")

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"settings": {"ax": {"inlayHints": {"share": "parent"}}}})
    )
    await until(lambda: client.refreshes["inlayHint"] > 0, "an inlay hint refresh")
    got = await hints(client, lib)
    label = [h.label for h in got if h.position.line == line_of(lib, "fn count_words(")][0]
    assert label.endswith("of caller") and "3 calls" in label, label


async def test_profile_rewritten_during_the_session(client: LanguageClient, crate: Path):
    await start(client, crate)
    lib = crate / "src" / "lib.rs"
    manifest = crate / "ax-plugin.toml"
    profile = crate / ".ax" / "profile.json"
    open_file(client, lib)
    await until(lambda: diags(client, lib), "first diagnostics")
    assert not any(d.severity == types.DiagnosticSeverity.Error for d in diags(client, lib))

    # Budget violations recorded: written the way ax writes (temp file + rename).
    data = json.loads(profile.read_text())
    for c in data["callsites"]:
        if c["name"] == "count_words":
            c["budget_violations"] = 2
    tmp = profile.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, profile)
    errors = await until(
        lambda: [d for d in diags(client, lib) if d.severity == types.DiagnosticSeverity.Error],
        "a budget-violation error after the profile was rewritten",
    )
    assert "2 calls were stopped by a budget" in errors[0].message
    await until(lambda: client.refreshes["inlayHint"] > 0 and client.refreshes["codeLens"] > 0, "refresh requests")

    # A truncated profile: one diagnostic and one message, no crash.
    profile.write_text(profile.read_text()[:200])
    broken = await until(lambda: [d for d in diags(client, manifest) if d.code == "profile"], "a profile diagnostic")
    assert "truncated profile" in broken[0].message
    assert await until(lambda: [m for m in client.messages if "truncated profile" in m.message], "a message")
    await until(lambda: not diags(client, lib), "lib.rs diagnostics cleared")

    # A newer version: named as such.
    profile.write_text(json.dumps({"format": "ax-profile", "version": 99}))
    await until(
        lambda: [d for d in diags(client, manifest) if d.code == "profile" and "version 99" in d.message],
        "a version diagnostic",
    )

    # Profiled again for real: back to normal.
    profile_crate(crate)
    await until(
        lambda: any(d.message.startswith("hot spot #1") for d in diags(client, lib))
        and not [d for d in diags(client, manifest) if d.code == "profile"],
        "diagnostics after a real profile run",
    )
    got = await hints(client, lib)
    assert len(got) == 3
    assert len([m for m in client.messages if "truncated profile" in m.message]) == 1


async def test_a_function_called_once_reads_1_call(client: LanguageClient, crate: Path):
    # Issue 16: "over 1 calls" in the hot-spot diagnostic.
    profile_crate(crate, CALLS[:1])
    await start(client, crate)
    lib = crate / "src" / "lib.rs"
    hot = await until(lambda: [d for d in diags(client, lib) if d.message.startswith("hot spot")], "hot spots")
    assert any(d.message.endswith(" over 1 call") for d in hot), hot
    assert not any("1 calls" in d.message for d in hot), hot
    open_file(client, lib)
    labels = [h.label for h in await hints(client, lib)]
    assert any("· 1 call ·" in label for label in labels), labels


async def test_quiet_after_a_change(client: LanguageClient, crate: Path):
    """The server reads the files it watches: its own reads must not wake it."""
    await start(client, crate)
    lib = crate / "src" / "lib.rs"
    profile = crate / ".ax" / "profile.json"
    await until(lambda: diags(client, lib), "first diagnostics")
    before = client.publishes
    profile.write_text(profile.read_text())
    await until(lambda: client.publishes > before, "diagnostics republished after the profile changed")
    await asyncio.sleep(0.5)
    settled = client.publishes
    await asyncio.sleep(1.0)
    assert client.publishes == settled, f"{client.publishes - settled} more publishes while nothing changed"
