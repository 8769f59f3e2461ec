//! A crate's module tree, read from its sources, and the references each
//! module makes to the others (`use` items and paths in code alike).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::source;

/// A module's path from its crate root: `crate`, `crate::routes::jobs`.
pub type ModPath = String;

/// One module of a crate.
#[derive(Debug, Default)]
pub struct Module {
    /// The file that holds it (an inline module shares its parent's).
    pub file: PathBuf,
    pub children: BTreeSet<String>,
    /// Paths it mentions: (line, segments).
    paths: Vec<(usize, Vec<String>, bool)>,
}

/// Where a module refers to another: the module it names, and the line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    pub from: ModPath,
    pub to: ModPath,
    pub file: PathBuf,
    pub line: usize,
}

/// The modules of one crate target (a `lib.rs`, `main.rs` or `src/bin/*.rs`).
#[derive(Debug, Default)]
pub struct Crate {
    pub root: PathBuf,
    pub modules: BTreeMap<ModPath, Module>,
}

impl Crate {
    /// Reads the module tree under `root_file`.
    pub fn load(root_file: &Path) -> Crate {
        let mut krate = Crate {
            root: root_file.to_path_buf(),
            modules: BTreeMap::new(),
        };
        let dir = root_file.parent().unwrap_or(Path::new(".")).to_path_buf();
        krate.load_file("crate".to_owned(), root_file, dir);
        krate
    }

    /// Loads the module `path` from `file`; `dir` is where its `mod x;`
    /// children live.
    fn load_file(&mut self, path: ModPath, file: &Path, dir: PathBuf) {
        let Ok(text) = std::fs::read_to_string(file) else {
            return;
        };
        let code = source::without_test_items(&source::code_only(&text));
        self.load_code(path, file, &dir, &code, 0);
    }

    fn load_code(&mut self, path: ModPath, file: &Path, dir: &Path, code: &str, first_line: usize) {
        let tokens = tokenize(code, first_line);
        let mut own = Vec::new();
        let mut i = 0;
        let mut children = Vec::new();
        while i < tokens.len() {
            if tokens[i].is_ident("mod")
                && let Some(name) = tokens.get(i + 1).and_then(Token::ident)
            {
                match tokens.get(i + 2).map(|t| t.text.as_str()) {
                    Some(";") => {
                        children.push(name.to_owned());
                        let (f, d) = child_file(dir, name);
                        self.load_file(format!("{path}::{name}"), &f, d);
                        i += 3;
                        continue;
                    }
                    Some("{") => {
                        let open = tokens[i + 2].offset;
                        let close = source::matching_brace(code, open).unwrap_or(code.len() - 1);
                        let line = tokens[i + 2].line;
                        children.push(name.to_owned());
                        let inner = &code[open + 1..close];
                        self.load_code(
                            format!("{path}::{name}"),
                            file,
                            &dir.join(name),
                            inner,
                            line,
                        );
                        // Skip the inline module's tokens.
                        while i < tokens.len() && tokens[i].offset <= close {
                            i += 1;
                        }
                        continue;
                    }
                    _ => {}
                }
            }
            own.push(tokens[i].clone());
            i += 1;
        }
        let module = self.modules.entry(path).or_default();
        module.file = file.to_path_buf();
        module.children.extend(children);
        module.paths.extend(paths(&own));
    }

    /// Every reference of a module to another module of this crate.
    pub fn references(&self) -> Vec<Reference> {
        let mut out = BTreeSet::new();
        for (from, module) in &self.modules {
            for (line, segments, _) in &module.paths {
                if let Some(to) = self.resolve(from, segments)
                    && &to != from
                {
                    out.insert(Reference {
                        from: from.clone(),
                        to,
                        file: module.file.clone(),
                        line: *line,
                    });
                }
            }
        }
        out.into_iter().collect()
    }

    /// The module a path, mentioned in `from`, names (or reaches an item of).
    fn resolve(&self, from: &str, segments: &[String]) -> Option<ModPath> {
        let mut at: ModPath;
        let mut rest = segments;
        match segments.first()?.as_str() {
            "crate" => {
                at = "crate".to_owned();
                rest = &rest[1..];
            }
            "self" => {
                at = from.to_owned();
                rest = &rest[1..];
            }
            "super" => {
                at = from.to_owned();
                while rest.first().is_some_and(|s| s == "super") {
                    at = at.rsplit_once("::").map(|(p, _)| p.to_owned())?;
                    rest = &rest[1..];
                }
            }
            first if self.modules.get(from)?.children.contains(first) => {
                at = from.to_owned();
            }
            _ => return None,
        }
        let mut hops = 0;
        while let Some(next) = rest.first() {
            let module = self.modules.get(&at)?;
            if module.children.contains(next) {
                at = format!("{at}::{next}");
                rest = &rest[1..];
            } else if let Some(target) = self.reexport(&at, next)
                && hops < 8
            {
                // `crate::Name` where the module only re-exports `Name`.
                hops += 1;
                at = target;
                rest = &rest[1..];
                if rest.is_empty() {
                    break;
                }
            } else {
                break;
            }
        }
        Some(at)
    }

    /// The module that `name` comes from, if `module` imports it with `use`
    /// from another module of this crate.
    fn reexport(&self, module: &str, name: &str) -> Option<ModPath> {
        let m = self.modules.get(module)?;
        m.paths.iter().find_map(|(_, segments, is_use)| {
            if !*is_use || segments.last().map(String::as_str) != Some(name) {
                return None;
            }
            let target = self.resolve(module, &segments[..segments.len() - 1])?;
            (target != module).then_some(target)
        })
    }
}

/// The file and folder of `mod name;` declared in a module whose children
/// live in `dir`.
fn child_file(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() {
        (flat, dir.join(name))
    } else {
        (dir.join(name).join("mod.rs"), dir.join(name))
    }
}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    offset: usize,
    line: usize,
}

impl Token {
    fn ident(&self) -> Option<&str> {
        let first = self.text.chars().next()?;
        (first.is_alphabetic() || first == '_').then_some(self.text.as_str())
    }

    fn is_ident(&self, word: &str) -> bool {
        self.text == word
    }
}

/// Identifiers, `::` and single punctuation characters, with their offsets
/// and lines (counted from `first_line`).
fn tokenize(code: &str, first_line: usize) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut line = first_line + 1;
    let mut chars = code.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c == '\n' {
            line += 1;
        } else if c.is_alphabetic() || c == '_' {
            let mut end = at + c.len_utf8();
            while let Some(&(i, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' {
                    end = i + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(Token {
                text: code[at..end].to_owned(),
                offset: at,
                line,
            });
        } else if c == ':' && chars.peek().is_some_and(|&(_, d)| d == ':') {
            chars.next();
            tokens.push(Token {
                text: "::".to_owned(),
                offset: at,
                line,
            });
        } else if !c.is_whitespace() {
            tokens.push(Token {
                text: c.to_string(),
                offset: at,
                line,
            });
        }
    }
    tokens
}

/// The paths in `tokens` (`a::b::c`, and each leaf of `a::{b, c::{d}}`),
/// each with its line and whether a `use` item brought it in.
fn paths(tokens: &[Token]) -> Vec<(usize, Vec<String>, bool)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts = tokens[i].ident().is_some()
            && tokens.get(i + 1).is_some_and(|t| t.text == "::")
            && (i == 0 || tokens[i - 1].text != "::");
        if !starts {
            i += 1;
            continue;
        }
        let is_use = i > 0 && tokens[i - 1].text == "use";
        let line = tokens[i].line;
        let mut leaves = Vec::new();
        i = path_tree(tokens, i, Vec::new(), &mut leaves);
        out.extend(leaves.into_iter().map(|p| (line, p, is_use)));
    }
    out
}

/// Reads a path (or a `{...}` group of them) at `i`, after `prefix`; pushes
/// every complete path to `out`; returns the index after it.
fn path_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix;
    loop {
        match tokens.get(i) {
            Some(t) if t.text == "{" => {
                i += 1;
                loop {
                    match tokens.get(i).map(|t| t.text.as_str()) {
                        None => return i,
                        Some("}") => return i + 1,
                        Some(",") => i += 1,
                        Some("self") => {
                            out.push(path.clone());
                            i += 1;
                        }
                        Some(_) => i = path_tree(tokens, i, path.clone(), out),
                    }
                }
            }
            Some(t) if t.text == "*" => {
                out.push(path);
                return i + 1;
            }
            Some(t) if t.ident().is_some() => {
                path.push(t.text.clone());
                i += 1;
                if tokens.get(i).is_some_and(|t| t.text == "::") {
                    i += 1;
                    continue;
                }
                if tokens.get(i).is_some_and(|t| t.text == "as") {
                    i += 2;
                }
                out.push(path);
                return i;
            }
            _ => {
                if !path.is_empty() {
                    out.push(path);
                }
                return i;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(code: &str) -> Vec<String> {
        paths(&tokenize(code, 0))
            .into_iter()
            .map(|(_, p, _)| p.join("::"))
            .collect()
    }

    #[test]
    fn paths_and_groups_are_read() {
        assert_eq!(
            leaves("use crate::{a, b::{c, d as e}, f::*}; x::y(); ::z::w();"),
            ["crate::a", "crate::b::c", "crate::b::d", "crate::f", "x::y"]
        );
        assert_eq!(
            leaves("use super::super::x::{self, Y};"),
            ["super::super::x", "super::super::x::Y"]
        );
    }
}
