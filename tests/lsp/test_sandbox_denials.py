"""ax-lsp shows what the sandbox denied on the manifest, through pytest-lsp's
client and the real binary: the hostile fixture runs sandboxed under a real
`ax run` (which records its denials in `.ax/profile.json`), then each
capability denied is a warning at the key that would allow it (`network`) or
on `[sandbox]` when no key does (`ptrace`), saying how often, in which method
and what to write; a later run denied nothing clears them.

Lines are found from the manifest's text, never hard-coded.
"""

import json
import subprocess
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import REPO, binary, target_dir
from test_ax_lsp import diags, line_of, open_file, start, until, uri

MANIFEST = """[plugin]
name = "hostile"
version = "0.1.0"
library = "{library}"

[sandbox]
network = "none"
exec = false
"""


def ax_run(crate: Path, calls: list) -> subprocess.CompletedProcess:
    path = crate / "calls.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in calls))
    return subprocess.run(
        [binary("ax"), "run", "--no-build", str(crate), "--calls", str(path)],
        check=True, capture_output=True, text=True,
    )


@pytest.fixture
def hostile(tmp_path) -> Path:
    subprocess.run(["cargo", "build", "-q", "-p", "fixture-hostile", "-p", "ax-cli", "-p", "ax-lsp"], cwd=REPO, check=True)
    crate = tmp_path / "hostile"
    crate.mkdir()
    library = target_dir() / "debug" / "libfixture_hostile.so"
    (crate / "ax-plugin.toml").write_text(MANIFEST.format(library=library))
    return crate


def sandbox_diags(client: LanguageClient, manifest: Path):
    return [d for d in diags(client, manifest) if d.code == "sandbox"]


async def test_recorded_denials_are_warnings_at_the_key_that_would_allow_them(client: LanguageClient, hostile: Path):
    manifest = hostile / "ax-plugin.toml"
    run = ax_run(hostile, [
        {"method": "connect", "input": {"port": 9}},
        {"method": "connect", "input": {"port": 9}},
        {"method": "ptrace_parent"},
        {"method": "ok"},
    ])
    assert "denials are recorded in" in run.stderr, run.stderr
    recorded = json.loads((hostile / ".ax" / "profile.json").read_text())["sandbox_denials"]
    assert {"method": "connect", "capability": "network", "count": 2} in recorded, recorded

    await start(client, hostile)
    got = await until(lambda: len(sandbox_diags(client, manifest)) == 2 and sandbox_diags(client, manifest),
                      "two sandbox diagnostics on ax-plugin.toml (not open)")
    by_capability = {d.message.split()[3]: d for d in got}
    network, ptrace = by_capability["network"], by_capability["ptrace"]
    assert network.severity == ptrace.severity == types.DiagnosticSeverity.Warning
    assert network.range.start.line == line_of(manifest, "network =")
    assert "network 2×" in network.message and "(in connect ×2)" in network.message, network.message
    assert 'network = "loopback"' in network.message, network.message
    assert ptrace.range.start.line == line_of(manifest, "[sandbox]")
    assert "(in ptrace_parent ×1)" in ptrace.message and "no [sandbox] key allows ptrace" in ptrace.message

    # Run again, denied nothing: the record is replaced and the warnings go.
    ax_run(hostile, [{"method": "ok"}])
    assert "sandbox_denials" not in (hostile / ".ax" / "profile.json").read_text()
    await until(lambda: not sandbox_diags(client, manifest), "sandbox diagnostics cleared")


async def test_a_run_denied_nothing_records_nothing_and_shows_nothing(client: LanguageClient, hostile: Path):
    run = ax_run(hostile, [{"method": "ok"}])
    assert "recorded" not in run.stderr, run.stderr
    assert not (hostile / ".ax" / "profile.json").exists()
    await start(client, hostile)
    manifest = hostile / "ax-plugin.toml"
    open_file(client, manifest)
    await until(lambda: uri(manifest) in client.diagnostics, "diagnostics of the open ax-plugin.toml")
    assert not sandbox_diags(client, manifest)
