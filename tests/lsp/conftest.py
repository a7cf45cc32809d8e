"""Fixtures for the pytest-lsp tests of ax-lsp.

A plugin crate is prepared once per session: word-count's source copied to a
temporary directory, with a manifest pointing at the library cargo built and
thresholds low enough that the profile carries real recommendations, and a
profile taken for real by `ax run --profile`. Each test gets its own copy of
that crate and its own ax-lsp process, driven by pytest-lsp's client.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

REPO = Path(__file__).resolve().parents[2]
CALLS = [
    {"method": "count", "input": {"text": "a b c"}},
    {"method": "count", "input": {"text": "the quick brown fox jumps over the lazy dog"}},
    {"method": "count", "input": {"text": "one, two; three!"}},
]


def pytest_terminal_summary(terminalreporter):
    """TAP-style totals, which scripts/test adds to its final count."""
    stats = terminalreporter.stats
    terminalreporter.write_line(f"# pass {len(stats.get('passed', []))}")
    terminalreporter.write_line(f"# fail {len(stats.get('failed', [])) + len(stats.get('error', []))}")


def target_dir() -> Path:
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO, check=True, capture_output=True, text=True,
    )
    return Path(json.loads(meta.stdout)["target_directory"])


def binary(name: str) -> str:
    return str(target_dir() / "debug" / name)


MANIFEST = """[plugin]
name = "word-count"
version = "0.1.0"
library = "{library}"

[budget]
max_duration = "5s"

[budget.functions]
count_words = "1ns"

[startup]
max_phase = "1us"
"""


def profile_crate(crate: Path, calls_made=CALLS) -> None:
    """Runs word-count under `ax run --profile`, writing crate/.ax/profile.json."""
    calls = crate / "calls.jsonl"
    calls.write_text("".join(json.dumps(c) + "\n" for c in calls_made))
    subprocess.run(
        [binary("ax"), "run", "--profile", "--calls", str(calls), str(crate)],
        check=True, capture_output=True, text=True,
    )


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    subprocess.run(
        ["cargo", "build", "-q", "-p", "word-count", "-p", "ax-cli", "-p", "ax-lsp"],
        cwd=REPO, check=True,
    )
    crate = tmp_path_factory.mktemp("template") / "word-count"
    crate.mkdir()
    shutil.copytree(REPO / "examples" / "word-count" / "src", crate / "src")
    library = target_dir() / "debug" / "libword_count.so"
    (crate / "ax-plugin.toml").write_text(MANIFEST.format(library=library))
    profile_crate(crate)
    return crate


@pytest.fixture
def crate(template, tmp_path) -> Path:
    """A fresh copy of the profiled crate."""
    dest = tmp_path / "word-count"
    shutil.copytree(template, dest)
    return dest


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[binary("ax-lsp"), "--stdio"]))
async def client(lsp_client: LanguageClient):
    lsp_client.refreshes = {"inlayHint": 0, "codeLens": 0}

    @lsp_client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)
    def _hint_refresh(*_args):
        lsp_client.refreshes["inlayHint"] += 1

    @lsp_client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def _lens_refresh(*_args):
        lsp_client.refreshes["codeLens"] += 1

    # Count diagnostics notifications too (pytest-lsp keeps only the latest per
    # file), wrapping its handler in pygls' feature table.
    lsp_client.publishes = 0
    features = lsp_client.protocol.fm._features
    keep = features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def counted(*args):
        lsp_client.publishes += 1
        return keep(*args)

    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = counted

    yield
    await lsp_client.shutdown_session()
