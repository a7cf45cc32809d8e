"""ax-lsp with a baseline and with leak hints, through pytest-lsp's client and
the real binary: the change against `.ax/baseline.json` in inlay hints
(short: VS Code cuts labels at about 43 characters), hover and a regression
warning; the "accept as new baseline" code action run as a real client runs
it (`workspace/executeCommand`); and the `leaky` fixture's growing memory as a
warning and a hover line, with no hint on its bounded cache.

Baselines and profiles are taken for real by `ax run --profile` and `ax perf
baseline`; lines are found from the source text, never hard-coded.
"""

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import REPO, binary, profile_crate, target_dir
from test_ax_lsp import diags, hints, line_of, open_file, start, uri, until

SHORT = [{"method": "count", "input": {"text": "a b c"}}] * 40
LONG = [{"method": "count", "input": {"text": " ".join(["word"] * 300)}}] * 40
CHANGE_HINT = re.compile(r"^p50 [\d.]+ (ns|µs|ms|s) \((\+\d+% vs baseline|±[\d.]+%, not significant)\) · 40 calls$")


def ax(*args: str) -> None:
    subprocess.run([binary("ax"), *args], check=True, capture_output=True, text=True)


async def hint_of(client: LanguageClient, lib: Path, needle: str) -> str:
    line = line_of(lib, needle)
    labels = {h.position.line: h.label for h in await hints(client, lib)}
    assert line in labels, labels
    return labels[line]


async def hover_of(client: LanguageClient, lib: Path, needle: str) -> str:
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri(lib)), types.Position(line_of(lib, needle), 4))
    )
    return hover.contents.value


async def test_baseline_change_in_hints_hover_diagnostics_and_accepted_from_the_client(
    client: LanguageClient, crate: Path
):
    profile_crate(crate, SHORT)
    ax("perf", "baseline", str(crate))
    profile_crate(crate, LONG)
    result = await start(client, crate)
    assert list(result.capabilities.execute_command_provider.commands) == ["ax-lsp.acceptBaseline"]
    lib = crate / "src" / "lib.rs"
    open_file(client, lib)

    label = await hint_of(client, lib, "fn count_words(")
    m = CHANGE_HINT.match(label)
    assert m and m.group(2).startswith("+"), label
    assert len(label) <= 43, f"VS Code would cut {label!r}"

    md = await hover_of(client, lib, "fn count_words(")
    for needle in ["| vs baseline | p50 ", "Mann–Whitney U on the histograms, p < 0.001", "40 vs 40 calls", "_Baseline taken "]:
        assert needle in md, f"{needle!r} missing from hover:\n{md}"

    line = line_of(lib, "fn count_words(")
    regressed = await until(
        lambda: [d for d in diags(client, lib) if d.code == "regression" and d.range.start.line == line],
        "a regression warning on count_words",
    )
    assert regressed[0].severity == types.DiagnosticSeverity.Warning
    assert "`count_words`: p50 +" in regressed[0].message and "vs baseline" in regressed[0].message, regressed

    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri(lib)),
            range=types.Range(types.Position(line, 0), types.Position(line, 0)),
            context=types.CodeActionContext(diagnostics=regressed),
        )
    )
    accept = [a for a in actions if a.title.startswith("Accept the current profile as the new baseline")]
    assert accept, [a.title for a in actions]
    command = accept[0]
    assert isinstance(command, types.Command), command
    assert command.command == "ax-lsp.acceptBaseline"
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
    )
    baseline = json.loads((crate / ".ax" / "baseline.json").read_text())
    assert baseline == json.loads((crate / ".ax" / "profile.json").read_text())
    await until(lambda: not [d for d in diags(client, lib) if d.code == "regression"], "the regression gone")
    label = await hint_of(client, lib, "fn count_words(")
    assert CHANGE_HINT.match(label) and label.endswith("(±0.0%, not significant) · 40 calls"), label

    # Cleared from the command line: plain hints again, once the server has re-read.
    ax("perf", "baseline", str(crate), "--clear")
    deadline = asyncio.get_running_loop().time() + 10
    while "baseline" in (label := await hint_of(client, lib, "fn count_words(")) or "significant" in label:
        assert asyncio.get_running_loop().time() < deadline, f"still compared after --clear: {label}"
        await asyncio.sleep(0.05)
    assert " · p95 " in label, label


async def test_accept_baseline_refuses_what_is_not_a_known_crate(client: LanguageClient, crate: Path, tmp_path: Path):
    await start(client, crate)
    with pytest.raises(Exception, match="not a plugin crate of this workspace"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="ax-lsp.acceptBaseline", arguments=[str(tmp_path)])
        )
    with pytest.raises(Exception, match="unknown command"):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command="rm", arguments=[]))
    assert not (tmp_path / ".ax").exists()


LEAKY_MANIFEST = """[plugin]
name = "leaky"
version = "0.1.0"
library = "{library}"
"""


@pytest.fixture(scope="session")
def leaky_template(tmp_path_factory) -> Path:
    subprocess.run(["cargo", "build", "-q", "-p", "fixture-leaky", "-p", "ax-cli", "-p", "ax-lsp"], cwd=REPO, check=True)
    crate = tmp_path_factory.mktemp("leaky") / "leaky"
    crate.mkdir()
    shutil.copytree(REPO / "tests" / "fixtures" / "leaky" / "src", crate / "src")
    library = target_dir() / "debug" / "libfixture_leaky.so"
    (crate / "ax-plugin.toml").write_text(LEAKY_MANIFEST.format(library=library))
    calls = []
    for i in range(500):
        calls.append({"method": "remember", "input": {"text": f"entry {i}"}})
        calls.append({"method": "lookup", "input": {"key": i}})
    profile_crate(crate, calls)
    return crate


async def test_leak_warning_and_hover_and_none_on_a_bounded_cache(
    client: LanguageClient, leaky_template: Path, tmp_path: Path
):
    crate = tmp_path / "leaky"
    shutil.copytree(leaky_template, crate)
    await start(client, crate)
    lib = crate / "src" / "lib.rs"
    leaks = await until(lambda: [d for d in diags(client, lib) if d.code == "leak"], "a leak warning")
    assert len(leaks) == 1, leaks
    assert leaks[0].range.start.line == line_of(lib, "fn remember(")
    assert leaks[0].severity == types.DiagnosticSeverity.Warning
    assert re.search(r"`remember` keeps ~1\.2 KiB per call; [\d.]+ KiB after 500 calls", leaks[0].message), leaks

    open_file(client, lib)
    md = await hover_of(client, lib, "fn remember(")
    assert "| kept | 1.2 KiB per call (self); **keeps ~1.2 KiB per call;" in md, md
    md = await hover_of(client, lib, "fn cached(")
    assert "| kept |" in md and "not growing with the calls" in md, md
