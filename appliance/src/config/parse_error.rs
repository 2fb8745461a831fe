//! Errors of the TOML parser and of serde's deserialisation, made as useful as those of
//! validation: each names the field as a path (`system.idle`,
//! `pool[0].members[1].state`), says what was expected in the operator's words (for an
//! enumeration, every allowed value) and what was found, suggests the nearest valid
//! key or value for a misspelt one, and shows an example from the shipped
//! configurations when they set that field.
//!
//! The parser reports a byte span and a message; the field is found by walking the
//! document (kept with its spans by `toml_edit`) to the key whose span holds the error.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Value};

use super::ConfigError;

/// The shipped configurations, searched for an example of a field.
const EXAMPLES: [(&str, &str); 4] = [
    (
        "appliance/configs/testbed.toml",
        include_str!("../../configs/testbed.toml"),
    ),
    (
        "appliance/configs/shaping.toml",
        include_str!("../../configs/shaping.toml"),
    ),
    (
        "appliance/configs/testbed-afxdp.toml",
        include_str!("../../configs/testbed-afxdp.toml"),
    ),
    (
        "appliance/configs/testbed-dpdk.toml",
        include_str!("../../configs/testbed-dpdk.toml"),
    ),
];

/// The generic fix when nothing better is known.
const SEE_EXAMPLE: &str = "see appliance/configs/testbed.toml for a working example of every table";

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// `system.idle`, `pool[0].members[1].state`.
fn path_text(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn holds(span: Option<Range<usize>>, at: usize) -> bool {
    span.is_some_and(|s| s.start <= at && at < s.end.max(s.start + 1))
}

/// The path of the key or value at byte `at`, as deep as the document goes.
fn path_at(doc: &ImDocument<String>, at: usize) -> Option<Vec<Seg>> {
    fn in_value(v: &Value, at: usize, path: &mut Vec<Seg>) {
        match v {
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    if holds(x.span(), at) {
                        path.push(Seg::Index(i));
                        in_value(x, at, path);
                        return;
                    }
                }
            }
            Value::InlineTable(t) => {
                for (k, x) in t.iter() {
                    let key_span = t.key(k).and_then(|k| k.span());
                    if holds(key_span, at) || holds(x.span(), at) {
                        path.push(Seg::Key(k.to_string()));
                        in_value(x, at, path);
                        return;
                    }
                }
            }
            _ => {}
        }
    }
    fn in_table(t: &toml_edit::Table, at: usize, path: &mut Vec<Seg>) -> bool {
        for (k, item) in t.iter() {
            let key_span = t.key(k).and_then(|k| k.span());
            path.push(Seg::Key(k.to_string()));
            match item {
                Item::Value(v) => {
                    if holds(key_span, at) || holds(v.span(), at) {
                        in_value(v, at, path);
                        return true;
                    }
                }
                Item::Table(sub) => {
                    // Deepest first: a field inside, then the table (its header).
                    if in_table(sub, at, path) || holds(sub.span(), at) || holds(key_span, at) {
                        return true;
                    }
                }
                Item::ArrayOfTables(arr) => {
                    for (i, sub) in arr.iter().enumerate() {
                        path.push(Seg::Index(i));
                        if in_table(sub, at, path) || holds(sub.span(), at) {
                            return true;
                        }
                        path.pop();
                    }
                }
                Item::None => {}
            }
            path.pop();
        }
        false
    }
    let mut path = Vec::new();
    in_table(doc.as_table(), at, &mut path).then_some(path)
}

/// The item at `path` in a document being edited.
fn item_mut<'a>(doc: &'a mut toml_edit::DocumentMut, path: &[Seg]) -> Option<&'a mut Item> {
    let mut item = doc.as_item_mut();
    for s in path {
        item = match s {
            Seg::Key(k) => item.get_mut(k.as_str())?,
            Seg::Index(i) => item.get_mut(*i)?,
        };
    }
    Some(item)
}

/// A value's text without its surrounding whitespace and comments.
fn bare(v: &Value) -> String {
    let mut v = v.clone();
    v.decor_mut().clear();
    v.to_string()
}

/// The value set for the same field in a shipped configuration: at the same place if
/// there is one, else the first at any index. `(text, file)`.
fn example(path: &[Seg]) -> Option<(String, &'static str)> {
    fn exact(item: &Item, path: &[Seg]) -> Option<String> {
        let Some((first, rest)) = path.split_first() else {
            return item.as_value().map(bare);
        };
        match first {
            Seg::Key(k) => exact(item.get(k.as_str())?, rest),
            Seg::Index(i) => exact(item.get(*i)?, rest),
        }
    }
    fn find(item: &Item, path: &[Seg]) -> Option<String> {
        let Some((first, rest)) = path.split_first() else {
            return item.as_value().map(bare);
        };
        match first {
            Seg::Key(k) => find(item.get(k.as_str())?, rest),
            Seg::Index(_) => {
                if let Some(arr) = item.as_array_of_tables() {
                    arr.iter().find_map(|t| find(&Item::Table(t.clone()), rest))
                } else {
                    let arr = item.as_array()?;
                    arr.iter().find_map(|v| find(&Item::Value(v.clone()), rest))
                }
            }
        }
    }
    EXAMPLES.iter().find_map(|(file, text)| {
        let doc: toml_edit::DocumentMut = text.parse().ok()?;
        exact(doc.as_item(), path)
            .or_else(|| find(doc.as_item(), path))
            .map(|v| (v, *file))
    })
}

/// The words between backticks after `expected` in a serde message: the allowed
/// fields or values.
fn expected_list(msg: &str) -> Vec<String> {
    let Some(at) = msg.find("expected") else {
        return Vec::new();
    };
    msg[at..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// The first word between backticks: the unknown field or value.
fn quoted(msg: &str) -> Option<String> {
    msg.split('`').nth(1).map(String::from)
}

/// The allowed entry nearest to `wrong`, if it is close enough to be a misspelling.
fn nearest<'a>(wrong: &str, allowed: &'a [String]) -> Option<&'a str> {
    let wrong_l = wrong.to_lowercase();
    allowed
        .iter()
        .map(|a| (strsim::damerau_levenshtein(&wrong_l, &a.to_lowercase()), a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.as_str())
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
fn alternatives(values: &[String]) -> String {
    let q: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
    match q.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A Rust or serde type name in the words of a configuration file.
fn kind_words(expected: &str) -> String {
    let e = expected.trim();
    match e {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false (without quotes)".into(),
        "a string" => "a string in double quotes".into(),
        "a sequence" => "an array in brackets, e.g. [1, 2]".into(),
        "a map" | "struct" => "a table".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => other
            .trim_start_matches("a ")
            .to_string()
            .replace("  ", " "),
    }
}

/// The variants of the enumeration at `path`, found by asking the deserialiser about
/// a value that cannot be one of them.
fn variants_at(text: &str, path: &[Seg]) -> Vec<String> {
    let Ok(mut doc) = text.parse::<toml_edit::DocumentMut>() else {
        return Vec::new();
    };
    let Some(item) = item_mut(&mut doc, path) else {
        return Vec::new();
    };
    let probe = "\u{2047}";
    match item {
        Item::Value(v) => *v = Value::from(probe),
        other => *other = toml_edit::value(probe),
    }
    match toml::from_str::<super::Config>(&doc.to_string()) {
        Err(e) if e.message().contains(&format!("unknown variant `{probe}`")) => {
            expected_list(e.message())
        }
        _ => Vec::new(),
    }
}

/// Turns an error of `toml::from_str` into a [`ConfigError`] for `file`.
pub(super) fn describe(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let msg = e.message().trim().to_string();
    let span = e.span();
    let line = span.as_ref().map(|s| super::line_of(text, s.start));
    let found = span
        .as_ref()
        .and_then(|s| text.get(s.clone()))
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
        .filter(|s| !s.is_empty());
    let doc: Option<ImDocument<String>> = text.to_string().parse().ok();
    let path = match (&doc, &span) {
        (Some(d), Some(s)) => path_at(d, s.start),
        _ => None,
    };
    let error = |field: String, problem: String, fix: String| ConfigError {
        file: file.to_string(),
        line,
        field,
        problem,
        fix,
    };
    let Some(path) = path else {
        // Not a field: the text itself is not TOML.
        return error(
            "(syntax)".into(),
            msg.replace('\n', "; "),
            format!("write valid TOML (key = value, [table], [[array of tables]]); {SEE_EXAMPLE}"),
        );
    };
    let field = path_text(&path);
    let key = path.iter().rev().find_map(|s| match s {
        Seg::Key(k) => Some(k.clone()),
        Seg::Index(_) => None,
    });
    let key = key.unwrap_or_default();
    let with_example = |fix: String| match example(&path) {
        Some((v, f)) => format!("{fix}, e.g. {key} = {v} (as in {f})"),
        None => fix,
    };

    if msg.starts_with("unknown field") {
        let wrong = quoted(&msg).unwrap_or_default();
        let allowed = expected_list(&msg);
        let parent = path_text(&path[..path.len().saturating_sub(1)]);
        let (what, place) = if parent.is_empty() {
            ("table", "the tables are".to_string())
        } else {
            ("field", format!("the fields of {parent} are"))
        };
        let problem = format!("unknown {what} `{wrong}`; {place}: {}", allowed.join(", "));
        let fix = match nearest(&wrong, &allowed) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!("remove it, or use one of: {}", allowed.join(", ")),
        };
        return error(field, problem, fix);
    }
    if msg.starts_with("unknown variant") {
        let wrong = quoted(&msg).unwrap_or_default();
        let allowed = expected_list(&msg);
        let problem = format!(
            "\"{wrong}\" is not allowed; expected {}",
            alternatives(&allowed)
        );
        let fix = match nearest(&wrong, &allowed) {
            Some(n) => format!("did you mean \"{n}\"? write {key} = \"{n}\""),
            None => format!("write {key} = one of {}", alternatives(&allowed)),
        };
        return error(field, problem, fix);
    }
    if let Some(missing) = msg.strip_prefix("missing field ") {
        let missing = missing.trim_matches('`').to_string();
        let mut full = path.clone();
        full.push(Seg::Key(missing.clone()));
        let fix = match example(&full) {
            Some((v, f)) => {
                format!("add {missing} = … to this table, e.g. {missing} = {v} (as in {f})")
            }
            None => format!("add {missing} = … to this table; {SEE_EXAMPLE}"),
        };
        return error(path_text(&full), "is required but missing".into(), fix);
    }
    let found = found.unwrap_or_default();
    // An enumeration given something other than a string (toml's own wording).
    if msg.contains("wanted string or table") {
        let allowed = variants_at(text, &path);
        if !allowed.is_empty() {
            return error(
                field,
                format!("expected {}, found {found}", alternatives(&allowed)),
                format!(
                    "write one value in double quotes: {}",
                    allowed
                        .iter()
                        .map(|a| format!("{key} = \"{a}\""))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            );
        }
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let expected = rest
                .rsplit_once(", expected ")
                .map(|(_, e)| e)
                .unwrap_or("");
            let kind = kind_words(expected);
            let problem = format!("expected {kind}, found {found}");
            let fix = if matches!(path.last(), Some(Seg::Index(_))) {
                format!("make every element of {key} {kind}")
            } else if kind == "a table" {
                format!("write [{key}] as a table header with its fields on the lines below")
            } else {
                with_example(format!("write {key} = {kind}"))
            };
            return error(field, problem, fix);
        }
    }
    // A value the field's own parser refused (an address, a rate, ...): its message
    // already says why.
    error(
        field,
        format!("{found}: {msg}")
            .trim_start_matches(": ")
            .to_string(),
        with_example(format!("write a valid {key}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_suggests_only_close_names() {
        let allowed: Vec<String> = ["cores", "idle", "pool_size", "icmp_error_rate"]
            .map(String::from)
            .into();
        assert_eq!(nearest("idel", &allowed), Some("idle"));
        assert_eq!(nearest("pool-size", &allowed), Some("pool_size"));
        assert_eq!(nearest("IDLE", &allowed), Some("idle"));
        assert_eq!(nearest("wibble", &allowed), None);
    }

    #[test]
    fn lists_read_like_prose() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(alternatives(&v(&["busy"])), "\"busy\"");
        assert_eq!(
            alternatives(&v(&["busy", "adaptive"])),
            "\"busy\" or \"adaptive\""
        );
        assert_eq!(alternatives(&v(&["a", "b", "c"])), "\"a\", \"b\" or \"c\"");
        assert_eq!(
            expected_list("unknown variant `x`, expected one of `a`, `b`, `c`"),
            v(&["a", "b", "c"])
        );
        assert_eq!(
            expected_list("unknown variant `x`, expected `a` or `b`"),
            v(&["a", "b"])
        );
    }

    #[test]
    fn finds_the_path_of_a_span() {
        let text = "[system]\nidle = 1\n\n[[pool]]\nname = \"p\"\nmembers = [{ address = \"a\" }, { address = \"b\", state = 2 }]\n";
        let doc: ImDocument<String> = text.to_string().parse().unwrap();
        let at = |needle: &str| text.find(needle).unwrap();
        let p = |at| path_text(&path_at(&doc, at).unwrap());
        assert_eq!(p(at("1\n")), "system.idle");
        assert_eq!(p(at("idle")), "system.idle");
        assert_eq!(p(at("state")), "pool[0].members[1].state");
        assert_eq!(p(at("2 }")), "pool[0].members[1].state");
        assert_eq!(p(at("\"p\"")), "pool[0].name");
        assert_eq!(p(at("[[pool]]")), "pool[0]");
        assert_eq!(p(at("[system]")), "system");
    }

    #[test]
    fn examples_come_from_the_shipped_configurations() {
        let path = |s: &[&str]| {
            s.iter()
                .map(|x| match x.parse() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key(x.to_string()),
                })
                .collect::<Vec<_>>()
        };
        let (v, f) = example(&path(&["monitor", "3", "interval"])).unwrap();
        assert_eq!(v, "1");
        assert_eq!(f, "appliance/configs/testbed.toml");
        let (v, f) = example(&path(&["class", "0", "weight"])).unwrap();
        assert_eq!((v.as_str(), f), ("3", "appliance/configs/shaping.toml"));
        assert!(example(&path(&["system", "nothing"])).is_none());
    }
}
