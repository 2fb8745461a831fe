//! Configuration: the TOML model, loading, validation with errors that name the file,
//! the line, the field and the fix, and the translation into data-plane snapshots.

pub mod build;
pub mod drivers;
pub mod http;
pub mod model;
mod parse_error;
pub mod proxy;
pub mod rate;
pub mod shaping;
pub mod tls;
mod validate;

use std::fmt;
use std::path::Path;

pub use model::Config;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line of the offending field, when known.
    pub line: Option<usize>,
    /// The field, as a path (`self_ip[1].vlan`).
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// What to write instead.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: ", self.file, l)?,
            None => write!(f, "{}: ", self.file)?,
        }
        write!(f, "{}: {}", self.field, self.problem)?;
        if !self.fix.is_empty() {
            write!(f, "; fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// Every problem found in a file (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A finding of `rouge check` that does not make the file invalid: a warning, or an
/// error for `rouge check` (an expired certificate) that `rouge run` only logs, so one
/// expired certificate never keeps the other virtual servers from starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Where and what, as for an error.
    pub error: ConfigError,
    /// `rouge check` fails on it.
    pub severe: bool,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = if self.severe { "error" } else { "warning" };
        write!(f, "{level}: {}", self.error)
    }
}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with_warnings(path).map(|(cfg, _)| cfg)
}

/// As [`load`], with the warnings of the valid file as of the system clock.
pub fn load_with_warnings(path: &Path) -> Result<(Config, Vec<ConfigWarning>), ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: None,
            field: "(file)".into(),
            problem: format!("cannot read: {e}"),
            fix: "give the path of a readable TOML file with --config".into(),
        }])
    })?;
    let cfg = parse(&file, &text)?;
    let w = warnings(&file, &text, &cfg, tls::unix_now());
    Ok((cfg, w))
}

/// What `rouge check` warns about in a valid configuration (`text`, read from `file`)
/// at UNIX time `now`: addresses outside the self IPs' networks (validation's
/// warnings), then the TLS profiles' certificates and keys. Each names the file, line,
/// field and fix, like an error.
pub fn warnings(file: &str, text: &str, cfg: &Config, now: u64) -> Vec<ConfigWarning> {
    let doc: Option<toml_edit::ImDocument<String>> = text.to_string().parse().ok();
    let mut out: Vec<ConfigWarning> = located(file, text, validate::warnings(cfg))
        .into_iter()
        .map(|error| ConfigWarning {
            error,
            severe: false,
        })
        .collect();
    out.extend(tls::review(cfg, now).into_iter().map(|r| {
        ConfigWarning {
            error: ConfigError {
                file: file.to_string(),
                line: doc
                    .as_ref()
                    .and_then(|d| locate(d, &r.path))
                    .map(|s| line_of(text, s)),
                field: r.path.to_string(),
                problem: r.problem,
                fix: r.fix,
            },
            severe: r.severe,
        }
    }));
    out
}

/// Parses and validates configuration text; `file` names it in errors, and the TLS
/// profiles' relative paths are resolved against its directory (and the files read).
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigErrors> {
    let mut cfg: Config = toml::from_str(text)
        .map_err(|e| ConfigErrors(vec![parse_error::describe(file, text, &e)]))?;
    tls::resolve_paths(&mut cfg, &tls::base_dir(file));
    let mut problems = validate::validate(&cfg);
    let (loaded, more) = tls::load(&cfg);
    problems.extend(more);
    cfg.tls_loaded = loaded;
    if problems.is_empty() {
        return Ok(cfg);
    }
    Err(ConfigErrors(located(file, text, problems)))
}

/// Problems found by validation, located in `text` (line numbers) and named by `file`.
fn located(file: &str, text: &str, problems: Vec<validate::Problem>) -> Vec<ConfigError> {
    let doc: Option<toml_edit::ImDocument<String>> = text.to_string().parse().ok();
    problems
        .into_iter()
        .map(|p| ConfigError {
            file: file.to_string(),
            line: doc
                .as_ref()
                .and_then(|d| locate(d, &p.path))
                .map(|s| line_of(text, s)),
            field: p.path.to_string(),
            problem: p.problem,
            fix: p.fix,
        })
        .collect()
}

/// Checks that the interfaces' drivers fit `workers` workers (when `rouge run
/// --cores` chooses a different number than `[system] cores`); `file` names the
/// configuration in the error.
pub fn check_workers(file: &str, cfg: &Config, workers: usize) -> Result<(), ConfigErrors> {
    let problems = drivers::worker_problems(cfg, workers);
    if problems.is_empty() {
        return Ok(());
    }
    Err(ConfigErrors(
        problems
            .into_iter()
            .map(|(i, field, problem, fix)| ConfigError {
                file: file.to_string(),
                line: None,
                field: FieldPath {
                    table: "interface",
                    index: Some(i),
                    field: Some(field),
                }
                .to_string(),
                problem,
                fix,
            })
            .collect(),
    ))
}

/// Serialises a configuration back to TOML text.
pub fn to_toml(cfg: &Config) -> String {
    toml::to_string_pretty(cfg).unwrap_or_else(|e| format!("# cannot serialise: {e}\n"))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A path to a field: `self_ip[1].vlan`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    /// Top-level table or array-of-tables key.
    pub table: &'static str,
    /// Index in an array of tables.
    pub index: Option<usize>,
    /// Field inside the table.
    pub field: Option<&'static str>,
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.table)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        if let Some(k) = self.field {
            write!(f, ".{k}")?;
        }
        Ok(())
    }
}

fn locate(doc: &toml_edit::ImDocument<String>, path: &FieldPath) -> Option<usize> {
    let top = doc.as_table().get(path.table)?;
    let table = match path.index {
        Some(i) => top.as_array_of_tables()?.get(i)?,
        None => top.as_table()?,
    };
    if let Some(field) = path.field {
        if let Some((key, _)) = table.get_key_value(field) {
            if let Some(span) = key.span() {
                return Some(span.start);
            }
        }
    }
    table.span().map(|s| s.start)
}

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
