//! A light scanner of Rust source: where each `fn` is (its name, attributes,
//! signature and body lines) and where the `probe!` sites are.
//!
//! Profile callsites are mapped to functions by *name* through this scanner, so
//! hints stay on the right function while the user edits the file after the
//! profile was taken. It is hand-written rather than `syn`: it must run on every
//! keystroke of half-written code (where `syn` gives up on the whole file), and
//! it only needs tokens, not a tree. It knows comments (nested block comments),
//! strings (escaped and raw), char literals versus lifetimes, and brace depth;
//! that is enough to find items reliably.

/// A function found in the source. Lines are 0-based (LSP lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FnItem {
    pub name: String,
    /// First line of the attributes in front of the `fn` (its own line if none).
    pub attr_line: u32,
    /// The line of the `fn` keyword.
    pub fn_line: u32,
    /// The line where the signature ends (the line of `{` or `;`, or the line
    /// before a `{` that stands alone): hints go at its end.
    pub sig_line: u32,
    /// The line of the closing `}` (the signature's line for a bodiless fn).
    pub end_line: u32,
    /// Carries `#[instrument]` / `#[tracing::instrument]`.
    pub instrumented: bool,
}

/// What [`scan`] finds.
#[derive(Clone, Debug, Default)]
pub struct Outline {
    pub fns: Vec<FnItem>,
    /// `probe!` sites: (line, index in `fns` of the innermost enclosing fn).
    pub probes: Vec<(u32, Option<usize>)>,
}

impl Outline {
    /// The innermost function whose lines (attributes to closing brace) contain `line`.
    pub fn enclosing(&self, line: u32) -> Option<usize> {
        self.fns
            .iter()
            .enumerate()
            .filter(|(_, f)| f.attr_line <= line && line <= f.end_line)
            .min_by_key(|(_, f)| f.end_line - f.attr_line)
            .map(|(i, _)| i)
    }
}

/// Scans `text`; never fails (unbalanced input gives what was found so far).
pub fn scan(text: &str) -> Outline {
    let b = text.as_bytes();
    let mut out = Outline::default();
    let mut i = 0;
    let mut line: u32 = 0;
    let mut depth: u32 = 0;
    // Start line of the attributes seen since the last item boundary, and
    // whether one of them is an `instrument`.
    let mut pending_attr: Option<u32> = None;
    let mut pending_instrument = false;
    // A fn whose signature is being read: (index in out.fns, paren depth).
    let mut in_sig: Option<(usize, i32)> = None;
    let mut parens: i32 = 0;
    // Fns whose bodies are open: (index, depth inside the body).
    let mut open: Vec<(usize, u32)> = Vec::new();
    let mut line_start = 0usize;

    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
                line_start = i;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut nest = 1;
                i += 2;
                while i < b.len() && nest > 0 {
                    if b[i] == b'\n' {
                        line += 1;
                        line_start = i + 1;
                    } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        nest += 1;
                        i += 1;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        nest -= 1;
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    if b.get(i) == Some(&b'\n') {
                        line += 1;
                        line_start = i + 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'\'' => {
                // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < b.len() && b[i] != b'\'' && b[i] != b'\n' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    let ch_len = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                    if b.get(i + 1 + ch_len) == Some(&b'\'') {
                        i += 2 + ch_len;
                    } else {
                        i += 1;
                    }
                }
            }
            b'#' if b.get(i + 1) == Some(&b'[') || (b.get(i + 1) == Some(&b'!') && b.get(i + 2) == Some(&b'[')) => {
                let inner = b.get(i + 1) == Some(&b'!');
                let start_line = line;
                let from = i;
                // Skip to the matching ']' (attributes may span lines and nest brackets).
                let mut nest = 0;
                while i < b.len() {
                    match b[i] {
                        b'[' => nest += 1,
                        b']' => {
                            nest -= 1;
                            if nest == 0 {
                                i += 1;
                                break;
                            }
                        }
                        b'\n' => {
                            line += 1;
                            line_start = i + 1;
                        }
                        b'"' => {
                            i += 1;
                            while i < b.len() && b[i] != b'"' {
                                if b[i] == b'\\' {
                                    i += 1;
                                }
                                i += 1;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                if !inner {
                    pending_attr.get_or_insert(start_line);
                    let attr = &text[from..i.min(text.len())];
                    let head = attr.trim_start_matches("#[").trim_start();
                    if head.starts_with("instrument") || head.starts_with("tracing::instrument") {
                        pending_instrument = true;
                    }
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#')) && !ident_before(b, i) => {
                // Raw string r"..." / r#"..."#.
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == b'\n' {
                        line += 1;
                        line_start = j + 1;
                    }
                    if b[j] == b'"' && b[j + 1..].iter().take(hashes).filter(|&&h| h == b'#').count() == hashes {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                i = j;
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                let start = i;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                let word = &text[start..i];
                if word == "fn" && in_sig.is_none() {
                    let mut j = i;
                    while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                        j += 1;
                    }
                    let name_start = j;
                    while j < b.len() && (b[j] == b'_' || b[j].is_ascii_alphanumeric()) {
                        j += 1;
                    }
                    if j > name_start {
                        out.fns.push(FnItem {
                            name: text[name_start..j].to_owned(),
                            attr_line: pending_attr.unwrap_or(line),
                            fn_line: line,
                            sig_line: line,
                            end_line: line,
                            instrumented: pending_instrument,
                        });
                        in_sig = Some((out.fns.len() - 1, parens));
                        i = j;
                    }
                    pending_attr = None;
                    pending_instrument = false;
                } else if word == "probe" && b.get(i) == Some(&b'!') {
                    out.probes.push((line, open.last().map(|&(f, _)| f)));
                }
            }
            b'(' | b'[' => {
                parens += 1;
                i += 1;
            }
            b')' | b']' => {
                parens -= 1;
                i += 1;
            }
            b'{' => {
                if let Some((f, p)) = in_sig
                    && p == parens
                {
                    let alone = text[line_start..i].trim().is_empty();
                    let sig_line = if alone && line > out.fns[f].fn_line { line - 1 } else { line };
                    out.fns[f].sig_line = sig_line;
                    open.push((f, depth + 1));
                    in_sig = None;
                }
                depth += 1;
                pending_attr = None;
                pending_instrument = false;
                i += 1;
            }
            b'}' => {
                if let Some(&(f, d)) = open.last()
                    && d == depth
                {
                    out.fns[f].end_line = line;
                    open.pop();
                }
                depth = depth.saturating_sub(1);
                pending_attr = None;
                pending_instrument = false;
                i += 1;
            }
            b';' => {
                if let Some((f, p)) = in_sig
                    && p == parens
                {
                    out.fns[f].sig_line = line;
                    out.fns[f].end_line = line;
                    in_sig = None;
                }
                pending_attr = None;
                pending_instrument = false;
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1] == b'_' || b[i - 1].is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fns_attributes_and_bodies() {
        let src = "//! doc\nimpl W {\n    #[instrument(skip(self), fields(a = \"}\"))]\n    fn count(&mut self) -> u64 {\n        let s = \"fn fake() {\";\n        probe!(s);\n        1\n    }\n}\n\n#[tracing::instrument]\npub async fn later<'a>(x: &'a str)\n    -> char\n{\n    '{'\n}\nfn bare();\n";
        let o = scan(src);
        let names: Vec<_> = o.fns.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["count", "later", "bare"]);
        let count = &o.fns[0];
        assert_eq!((count.attr_line, count.fn_line, count.sig_line, count.end_line), (2, 3, 3, 7));
        assert!(count.instrumented);
        let later = &o.fns[1];
        assert_eq!((later.attr_line, later.fn_line, later.sig_line, later.end_line), (10, 11, 12, 15));
        assert!(later.instrumented);
        assert!(!o.fns[2].instrumented);
        assert_eq!(o.probes, [(5, Some(0))]);
        assert_eq!(o.enclosing(5), Some(0));
        assert_eq!(o.enclosing(8), None);
    }

    #[test]
    fn comments_raw_strings_and_nested_fns() {
        let src =
            "/* fn no() { /* nested */ } */\nfn outer() {\n    let r = r#\"fn nope() {\"#;\n    fn inner() {}\n}\n";
        let o = scan(src);
        let names: Vec<_> = o.fns.iter().map(|f| (f.name.as_str(), f.fn_line, f.end_line)).collect();
        assert_eq!(names, [("outer", 1, 4), ("inner", 3, 3)]);
        assert_eq!(o.enclosing(3), Some(1));
    }

    #[test]
    fn half_written_code_does_not_panic() {
        for src in ["fn", "fn x(", "#[instrument", "r#\"abc", "'", "fn a() { \"x", "/* open"] {
            let _ = scan(src);
        }
    }
}
