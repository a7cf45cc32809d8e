//! `ax-plugin.toml` as the editor sees it: where each table and key is (for
//! ranges), what each key means (for hover and completion), and the closest
//! known key to a misspelt one (for the quick fix).
//!
//! Parsing and validation stay in `ax-manifest`; this module only locates
//! things in the text, line by line, which also works while the file is
//! half-edited and does not parse.

/// A key of the schema: its table, name, documentation and an example value.
pub struct KeyDoc {
    pub table: &'static str,
    pub key: &'static str,
    pub doc: &'static str,
    pub example: &'static str,
}

/// The tables of the schema, with their documentation.
pub const TABLES: &[(&str, &str)] = &[
    ("plugin", "What the plugin is and where its library is. Required."),
    ("budget", "Per-call resource limits, enforced by the runtime's budget watchdog."),
    (
        "budget.functions",
        "A p95 wall-time target per instrumented function (span name = duration), checked by ax-lsp against the profile.",
    ),
    ("reload", "Hot reload settings for `ax dev`."),
    ("startup", "Thresholds above which the startup monitor recommends a change."),
    ("cache", "The host's query cache for this plugin (`ax_plugin::cache`)."),
    (
        "telemetry",
        "OpenTelemetry export of calls, plugin spans and metrics over OTLP (off by default; the `OTEL_*` variables win).",
    ),
    ("config", "Free-form configuration handed to `Plugin::init` as JSON."),
];

/// Every key of the schema (from `ax-manifest`'s documented fields).
pub const KEYS: &[KeyDoc] = &[
    KeyDoc {
        table: "plugin",
        key: "name",
        doc: "The plugin's name: lowercase letters, digits, `-` and `_`.",
        example: "\"word-count\"",
    },
    KeyDoc { table: "plugin", key: "version", doc: "The plugin's version.", example: "\"0.1.0\"" },
    KeyDoc { table: "plugin", key: "description", doc: "One line saying what the plugin does.", example: "\"\"" },
    KeyDoc {
        table: "plugin",
        key: "library",
        doc: "The plugin library, relative to the manifest's directory. Without it, ax builds the crate beside the manifest with cargo and takes its cdylib.",
        example: "\"target/debug/libplugin.so\"",
    },
    KeyDoc {
        table: "plugin",
        key: "isolation",
        doc: "Where the plugin runs: in the host process (`\"none\"`, the default) or in a child process with hard limits, restarted after a crash (`\"process\"`).",
        example: "\"process\"",
    },
    KeyDoc {
        table: "plugin",
        key: "lazy",
        doc: "Load the plugin on its first call rather than at startup.",
        example: "true",
    },
    KeyDoc {
        table: "plugin",
        key: "activation",
        doc: "Calls that load a lazy plugin: `\"method:NAME\"` or `\"*\"` (any call, the default). Implies `lazy`.",
        example: "[\"method:count\"]",
    },
    KeyDoc {
        table: "plugin",
        key: "preload",
        doc: "For a lazy plugin: load it in the background right after startup, so the first call does not wait.",
        example: "true",
    },
    KeyDoc {
        table: "budget",
        key: "max_memory",
        doc: "Memory a call may allocate (a size: `\"64MiB\"`).",
        example: "\"64MiB\"",
    },
    KeyDoc {
        table: "budget",
        key: "max_cpu_time",
        doc: "CPU time a call may use on its thread (a duration: `\"2s\"`).",
        example: "\"2s\"",
    },
    KeyDoc {
        table: "budget",
        key: "max_duration",
        doc: "Wall time a call may take (a duration: `\"5s\"`).",
        example: "\"5s\"",
    },
    KeyDoc {
        table: "reload",
        key: "debounce",
        doc: "Quiet time after the last file change before reloading.",
        example: "\"300ms\"",
    },
    KeyDoc {
        table: "reload",
        key: "init_timeout",
        doc: "How long the new build's `init` may take before the reload is rolled back.",
        example: "\"5s\"",
    },
    KeyDoc {
        table: "reload",
        key: "drain_timeout",
        doc: "How long to wait for calls in flight on the old build before rolling back.",
        example: "\"5s\"",
    },
    KeyDoc {
        table: "startup",
        key: "max_total",
        doc: "Startup time (all phases) above which ax recommends a change.",
        example: "\"200ms\"",
    },
    KeyDoc {
        table: "startup",
        key: "max_phase",
        doc: "Time of one startup phase above which ax recommends a change.",
        example: "\"50ms\"",
    },
    KeyDoc {
        table: "startup",
        key: "max_memory_growth",
        doc: "Growth of resident memory during startup above which ax recommends a change.",
        example: "\"50MiB\"",
    },
    KeyDoc { table: "cache", key: "max_entries", doc: "At most this many entries.", example: "10000" },
    KeyDoc {
        table: "cache",
        key: "max_bytes",
        doc: "At most this many bytes of keys and values.",
        example: "\"64MiB\"",
    },
    KeyDoc {
        table: "cache",
        key: "default_ttl",
        doc: "Time to live of entries stored without one (default: until evicted).",
        example: "\"60s\"",
    },
    KeyDoc {
        table: "telemetry",
        key: "enabled",
        doc: "Export even when no `OTEL_EXPORTER_OTLP_ENDPOINT` is set.",
        example: "true",
    },
    KeyDoc {
        table: "telemetry",
        key: "endpoint",
        doc: "The collector's base URL; `/v1/traces` and `/v1/metrics` are added for HTTP.",
        example: "\"http://localhost:4318\"",
    },
    KeyDoc {
        table: "telemetry",
        key: "protocol",
        doc: "`\"http/protobuf\"` (the default) or `\"grpc\"` (ax built with its `grpc` feature).",
        example: "\"http/protobuf\"",
    },
    KeyDoc {
        table: "telemetry",
        key: "service_name",
        doc: "The `service.name` resource attribute (default: the plugin's name).",
        example: "\"word-count\"",
    },
    KeyDoc {
        table: "telemetry",
        key: "headers",
        doc: "Headers sent with every export (authentication, tenant).",
        example: "{ \"x-api-key\" = \"secret\" }",
    },
    KeyDoc {
        table: "telemetry",
        key: "sample_ratio",
        doc: "Share of calls traced, from 0 to 1 (default 1); a call continuing a sampled `traceparent` is always traced.",
        example: "0.25",
    },
    KeyDoc {
        table: "telemetry",
        key: "level",
        doc: "The most detailed plugin spans exported: `error`, `warn`, `info` (the default), `debug` or `trace`. Events are not capped by it: those `AX_LOG` lets through go out with their span.",
        example: "\"info\"",
    },
    KeyDoc { table: "telemetry", key: "metrics_interval", doc: "How often metrics are exported.", example: "\"10s\"" },
    KeyDoc {
        table: "telemetry",
        key: "timeout",
        doc: "How long one export may take before it is given up (and counted as dropped).",
        example: "\"5s\"",
    },
    KeyDoc {
        table: "telemetry",
        key: "flush_timeout",
        doc: "How long ax may spend at exit flushing traces and metrics (in parallel); what is not sent by then is reported (default 1s).",
        example: "\"1s\"",
    },
];

/// A table header or a key found in the text. Lines and columns are 0-based;
/// columns count bytes (manifests are ASCII in practice; non-ASCII keys would
/// need quoting, which this locator does not resolve).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// `plugin` for a header, `plugin.lazy` for a key.
    pub path: String,
    pub line: u32,
    pub start: u32,
    pub end: u32,
    /// For a key: where its value starts and ends on the line.
    pub value: Option<(u32, u32)>,
    pub is_table: bool,
}

/// Tables and keys in order of appearance.
pub fn locate(text: &str) -> Vec<Located> {
    let mut out = Vec::new();
    let mut table = String::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n as u32;
        let indent = (raw.len() - raw.trim_start().len()) as u32;
        let body = strip_comment(raw).trim();
        if body.is_empty() {
            continue;
        }
        if let Some(rest) = body.strip_prefix('[') {
            let name = rest.trim_start_matches('[').split(']').next().unwrap_or("").trim();
            table = name.to_owned();
            let start = indent + raw.trim_start().find(name).unwrap_or(0) as u32;
            out.push(Located {
                path: table.clone(),
                line,
                start,
                end: start + name.len() as u32,
                value: None,
                is_table: true,
            });
        } else if let Some(eq) = body.find('=') {
            let key = body[..eq].trim().trim_matches('"');
            let value = body[eq + 1..].trim();
            let value_start = indent + raw.trim_start().find(value).unwrap_or(eq + 1) as u32;
            out.push(Located {
                path: if table.is_empty() { key.to_owned() } else { format!("{table}.{key}") },
                line,
                start: indent,
                end: indent + key.len() as u32,
                value: Some((value_start, value_start + value.len() as u32)),
                is_table: false,
            });
        }
    }
    out
}

fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '#' if !in_str => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The table a line belongs to (the last header at or above it), `""` if none.
pub fn table_at(located: &[Located], line: u32) -> String {
    located.iter().rev().find(|l| l.is_table && l.line <= line).map(|l| l.path.clone()).unwrap_or_default()
}

/// The documentation of a dotted key or table, as markdown.
pub fn doc_of(path: &str) -> Option<String> {
    if let Some((_, doc)) = TABLES.iter().find(|(t, _)| *t == path) {
        return Some(format!("**[{path}]**\n\n{doc}"));
    }
    if let Some(name) = path.strip_prefix("budget.functions.") {
        return Some(format!(
            "**budget.functions.{name}**\n\nThe p95 wall-time target of the function (span) `{name}`; ax-lsp warns when the profile's p95 is above it."
        ));
    }
    let k = KEYS.iter().find(|k| format!("{}.{}", k.table, k.key) == path)?;
    Some(format!("**{}** (in `[{}]`)\n\n{}\n\nExample: `{} = {}`", k.key, k.table, k.doc, k.key, k.example))
}

/// The closest of `candidates` to `word`, if it is close enough to be a typo
/// (edit distance at most a third of the word, and at least 1).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.len() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Keys of `table` that the schema knows.
pub fn keys_of(table: &str) -> impl Iterator<Item = &'static KeyDoc> + '_ {
    KEYS.iter().filter(move |k| k.table == table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_tables_keys_and_values() {
        let text = "[plugin]\nname = \"wc\" # the name\n\n  [budget.functions]\ncount_words = \"2ms\"\n";
        let l = locate(text);
        let paths: Vec<_> = l.iter().map(|x| (x.path.as_str(), x.line, x.start, x.end)).collect();
        assert_eq!(
            paths,
            [
                ("plugin", 0, 1, 7),
                ("plugin.name", 1, 0, 4),
                ("budget.functions", 3, 3, 19),
                ("budget.functions.count_words", 4, 0, 11)
            ]
        );
        assert_eq!(l[1].value, Some((7, 11)));
        assert_eq!(table_at(&l, 4), "budget.functions");
    }

    /// Every documented key, with its example value, makes a manifest that
    /// `ax-manifest` accepts: the docs name no key the schema lacks, and their
    /// examples are valid values.
    #[test]
    fn every_documented_key_and_example_is_valid() {
        let mut text = String::new();
        for (table, _) in TABLES.iter().filter(|(t, _)| *t != "config") {
            text.push_str(&format!("[{table}]\n"));
            for key in keys_of(table) {
                text.push_str(&format!("{} = {}\n", key.key, key.example));
            }
        }
        let parsed = ax_manifest::Manifest::parse(&text, std::path::Path::new("ax-plugin.toml"));
        assert!(parsed.is_ok(), "{text}\n{:?}", parsed.err().map(|e| e.to_string()));
    }

    #[test]
    fn closest_key_for_typos() {
        assert_eq!(closest("libary", keys_of("plugin").map(|k| k.key)), Some("library"));
        assert_eq!(closest("max_duraton", keys_of("budget").map(|k| k.key)), Some("max_duration"));
        assert_eq!(closest("zzz", keys_of("plugin").map(|k| k.key)), None);
        assert!(doc_of("plugin.lazy").unwrap().contains("first call"));
        assert!(doc_of("startup").is_some());
    }
}
