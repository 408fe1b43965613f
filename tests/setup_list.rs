//! `scripts/setup --list` names every external program the test suite calls, so that a new
//! dependency cannot be added without its install step: a program installed by hand passes on
//! that machine (and in CI there) and fails for the next new user.
//!
//! The check reads the sources the suite runs: the shell scripts of `scripts/test` (the
//! interop runs, and the shared rsplib-vm tool they call), the Rust tests (`Command::new("…")`
//! and absolute paths), and the shared `wire-check`. Each program called there that is
//! installed is looked up with `dpkg -S`; unless its package is one of Debian's Essential ones,
//! that package must be in the list. Programs from outside Debian's packages (the Rust
//! toolchain, installed by rustup; a Python of pyenv) are not checked. Debian only, like the
//! project's machines: without dpkg the test is skipped outside CI and fails in CI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `scripts/setup --list test`: (package, what of it the project runs).
fn setup_list() -> Vec<(String, Vec<String>)> {
    let out = Command::new("bash")
        .arg(repo().join("scripts/setup"))
        .args(["--list", "test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let _mode = w.next().unwrap();
            let pkg = w.next().unwrap().to_string();
            (pkg, w.map(str::to_string).collect())
        })
        .collect()
}

/// Where a program or path was found in the sources.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
}

/// Shell words that introduce the command rather than being one.
const PREFIXES: &[&str] = &[
    "then", "do", "else", "elif", "if", "while", "until", "!", "time", "exec", "command", "sudo",
    "env", "nice", "setsid", "nohup", "{", "}",
];

/// The commands of a shell script: the first word of every simple command (after `|`, `;`,
/// `&`, `(`, `$(`, backticks, and the prefixes above), with heredoc bodies skipped (in these
/// scripts they are guest scripts or Python). Quoted strings are not opaque: `run.sh -H "…"`
/// and `-c '…'` carry commands too.
fn shell_commands(text: &str) -> Vec<(usize, String)> {
    let mut found = vec![];
    let mut heredoc: Option<(String, bool)> = None;
    for (n, raw) in text.lines().enumerate() {
        if let Some((delim, dash)) = &heredoc {
            let l = if *dash { raw.trim_start() } else { raw };
            if l == delim {
                heredoc = None;
            }
            continue;
        }
        if let Some(i) = raw.find("<<") {
            let rest = raw[i + 2..].trim_start_matches('<');
            let dash = rest.starts_with('-');
            let d: String = rest
                .trim_start_matches('-')
                .trim_start()
                .trim_start_matches(['\'', '"'])
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !d.is_empty() {
                heredoc = Some((d, dash));
            }
        }
        let line = match raw.trim_start().starts_with('#') {
            true => continue,
            // A comment starts at a `#` after a blank (not `$#`, `${#x}`, `a#b`).
            false => match raw.find(" #") {
                Some(i) => &raw[..i],
                None => raw,
            },
        };
        let seps: &[char] = &['|', ';', '&', '(', ')', '`'];
        for seg in line.split(seps) {
            let seg = seg.trim_start_matches('$');
            let mut words = seg.split_whitespace().peekable();
            let mut cmd = None;
            while let Some(w) = words.next() {
                let w = w.trim_matches(['\'', '"']);
                if w.is_empty() || PREFIXES.contains(&w) || w.contains('=') && !w.starts_with('=') {
                    continue;
                }
                if w == "timeout" {
                    // timeout [-s SIG] DURATION COMMAND
                    while words.peek().is_some_and(|x| x.starts_with('-')) {
                        words.next();
                        words.next();
                    }
                    words.next();
                    continue;
                }
                if w == "ip" && words.peek() == Some(&"netns") {
                    let v: Vec<&str> = words.clone().take(2).collect();
                    if v.get(1) == Some(&"exec") {
                        found.push((n + 1, "ip".to_string()));
                        words.next();
                        words.next();
                        words.next(); // the namespace
                        continue;
                    }
                }
                cmd = Some(w.to_string());
                break;
            }
            if let Some(c) = cmd {
                let name_like = c
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_.+-/".contains(ch))
                    && c.chars()
                        .next()
                        .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '/');
                if name_like {
                    found.push((n + 1, c));
                }
            }
        }
    }
    found
}

/// Programs and absolute paths a Rust test uses: `Command::new("name")` and string literals
/// that are absolute paths under /usr, /bin or /sbin.
fn rust_programs(text: &str) -> Vec<(usize, String)> {
    let mut found = vec![];
    for (n, l) in text.lines().enumerate() {
        let mut rest = l;
        while let Some(i) = rest.find("Command::new(\"") {
            let s = &rest[i + 14..];
            if let Some(e) = s.find('"') {
                found.push((n + 1, s[..e].to_string()));
            }
            rest = s;
        }
        for lit in l.split('"').skip(1).step_by(2) {
            if ["/usr/", "/bin/", "/sbin/"]
                .iter()
                .any(|p| lit.starts_with(p))
            {
                found.push((n + 1, lit.to_string()));
            }
        }
    }
    found
}

/// Programs a Python tool runs: its interpreter and the string literals naming a program
/// (`default="tshark"`, `["tshark", …]`); only installed programs count, so other strings
/// fall away.
fn python_programs(text: &str) -> Vec<(usize, String)> {
    let mut found = vec![];
    for (n, l) in text.lines().enumerate() {
        if n == 0 {
            if let Some(interp) = l.strip_prefix("#!/usr/bin/env ") {
                found.push((1, interp.trim().to_string()));
            }
            continue;
        }
        for (i, lit) in l.split('"').enumerate().skip(1).step_by(2) {
            let before = l.split('"').nth(i - 1).unwrap_or("").trim_end();
            if (before.ends_with('=') || before.ends_with('[')) && !lit.is_empty() {
                found.push((n + 1, lit.to_string()));
            }
        }
    }
    found
}

/// The file on PATH a program name is (not a shell builtin or function).
fn which(name: &str) -> Option<PathBuf> {
    if name.starts_with('/') {
        return Path::new(name).exists().then(|| PathBuf::from(name));
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// The paths `dpkg -S` may know a file by: as found, with its symlinks resolved, and without
/// the /usr prefix (merged /usr: dpkg may know /bin/grep for /usr/bin/grep).
fn dpkg_names(path: &Path) -> Vec<PathBuf> {
    let real = std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
    let mut v = vec![path.to_path_buf(), real.clone()];
    for p in [path, &real] {
        if let Ok(rest) = p.strip_prefix("/usr") {
            v.push(Path::new("/").join(rest));
        }
    }
    v
}

/// The Debian package that installed each file, for the files one package owns (a directory
/// shared by several packages has none), with one `dpkg -S` for all of them.
fn owners(paths: &BTreeSet<PathBuf>) -> BTreeMap<PathBuf, String> {
    let names: BTreeSet<PathBuf> = paths.iter().flat_map(|p| dpkg_names(p)).collect();
    let out = Command::new("dpkg")
        .arg("-S")
        .args(&names)
        .output()
        .unwrap();
    // "pkg: /path", "pkg:amd64: /path", "pkg1, pkg2: /dir", "diversion by ...".
    let mut by_name: BTreeMap<PathBuf, String> = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((pkgs, path)) = l.split_once(": ") else {
            continue;
        };
        if l.starts_with("diversion") || pkgs.contains(", ") {
            continue;
        }
        let pkg = pkgs.split(':').next().unwrap().to_string();
        by_name.insert(PathBuf::from(path), pkg);
    }
    paths
        .iter()
        .filter_map(|p| {
            let pkg = dpkg_names(p).iter().find_map(|n| by_name.get(n).cloned())?;
            Some((p.clone(), pkg))
        })
        .collect()
}

/// Which of these packages Debian marks Essential (always installed).
fn essentials(pkgs: &BTreeSet<String>) -> BTreeSet<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Essential}\\n"])
        .args(pkgs)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(" yes"))
        .map(str::to_string)
        .collect()
}

/// The installed packages' dependency graph (Depends and Pre-Depends, with virtual packages
/// resolved through Provides), from one `dpkg-query`.
struct Deps(BTreeMap<String, Vec<String>>);

impl Deps {
    fn installed() -> Self {
        let out = Command::new("dpkg-query")
            .args([
                "-W",
                "-f",
                "${db:Status-Abbrev}\\t${Package}\\t${Depends}, ${Pre-Depends}\\t${Provides}\\n",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "libc6 (>= 2.34), foo | bar, baz:any" -> names.
        let names = |field: &str| -> Vec<String> {
            field
                .split([',', '|'])
                .map(|d| {
                    d.split_whitespace()
                        .next()
                        .unwrap_or("")
                        .split(':')
                        .next()
                        .unwrap()
                })
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut providers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 4 || !f[0].starts_with("ii") {
                continue;
            }
            deps.insert(f[1].to_string(), names(f[2]));
            for v in names(f[3]) {
                providers.entry(v).or_default().push(f[1].to_string());
            }
        }
        // A dependency on a virtual package is one on its installed providers.
        let resolved = deps
            .iter()
            .map(|(p, ds)| {
                let mut v = vec![];
                for d in ds {
                    if deps.contains_key(d) {
                        v.push(d.clone());
                    }
                    v.extend(providers.get(d).into_iter().flatten().cloned());
                }
                (p.clone(), v)
            })
            .collect();
        Deps(resolved)
    }

    /// The packages that installing `pkgs` installed: they and their dependencies, recursively
    /// (`cc` comes from gcc-12 through build-essential).
    fn closure<'a>(&self, pkgs: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = pkgs.into_iter().map(str::to_string).collect();
        while let Some(p) = todo.pop() {
            if seen.insert(p.clone()) {
                todo.extend(self.0.get(&p).into_iter().flatten().cloned());
            }
        }
        seen
    }
}

/// What language a source is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Shell,
    Rust,
    Python,
}

impl Lang {
    fn programs(self, text: &str) -> Vec<(usize, String)> {
        match self {
            Lang::Shell => shell_commands(text),
            Lang::Rust => rust_programs(text),
            Lang::Python => python_programs(text),
        }
    }
}

/// Every file the suite (and the scripts beside it) runs, with its language.
fn sources() -> Vec<(PathBuf, Lang)> {
    let r = repo();
    let shared = common::shared_dir();
    let mut v = vec![];
    for f in [
        "scripts/test",
        "scripts/interop",
        "scripts/demo",
        "scripts/setup",
        "scripts/bench-asap",
    ] {
        v.push((r.join(f), Lang::Shell));
    }
    for dir in ["interop", "sctp/interop"] {
        for e in std::fs::read_dir(r.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "sh") {
                v.push((p, Lang::Shell));
            }
        }
    }
    for f in ["tools/rsplib-vm/run.sh", "tools/rsplib-vm/build.sh"] {
        v.push((shared.join(f), Lang::Shell));
    }
    v.push((shared.join("tools/wire-check"), Lang::Python));
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut rs = vec![];
    for dir in [
        "tests",
        "registrar/tests",
        "sctp/tests",
        "tool/tests",
        "src",
        "proto/src",
        "registrar/src",
        "sctp/src",
        "tool/src",
    ] {
        rust_files(&r.join(dir), &mut rs);
    }
    v.extend(rs.into_iter().map(|p| (p, Lang::Rust)));
    v
}

fn have_dpkg() -> bool {
    let ok = Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "dpkg is required in CI");
        eprintln!("no dpkg: skipping the check of scripts/setup's list");
    }
    ok
}

#[test]
fn every_external_program_the_tests_call_is_in_the_setup_list() {
    if !have_dpkg() {
        return;
    }
    let list = setup_list();
    let listed = Deps::installed().closure(list.iter().map(|(p, _)| p.as_str()));
    // A shell's own `kill` or `test` is no program to install.
    let builtins: BTreeSet<String> = String::from_utf8(
        Command::new("bash")
            .args(["-c", "compgen -b"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .lines()
    .map(str::to_string)
    .collect();
    let me = repo().join(file!());
    let mut calls: Vec<(String, Site)> = vec![];
    for (file, lang) in sources().into_iter().filter(|(f, _)| *f != me) {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let shown = file
            .strip_prefix(repo())
            .map(Path::to_path_buf)
            .unwrap_or(file.clone());
        for (line, name) in lang.programs(&text) {
            if lang == Lang::Shell && builtins.contains(&name) {
                continue;
            }
            let file = shown.display().to_string();
            calls.push((name, Site { file, line }));
        }
    }
    let found: BTreeMap<String, PathBuf> = calls
        .iter()
        .filter_map(|(n, _)| Some((n.clone(), which(n)?)))
        .collect();
    let owner = owners(&found.values().cloned().collect());
    let essential = essentials(&owner.values().cloned().collect());
    let mut used: BTreeMap<String, (String, Site)> = BTreeMap::new();
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, site) in calls {
        let Some(pkg) = found.get(&name).and_then(|p| owner.get(p)) else {
            continue;
        };
        if essential.contains(pkg) {
            continue;
        }
        if !listed.contains(pkg) {
            missing
                .entry(format!("{name} (package {pkg})"))
                .or_default()
                .push(format!("{}:{}", site.file, site.line));
        }
        used.entry(name).or_insert((pkg.clone(), site));
    }
    eprintln!("external programs the suite calls, by package:");
    for (name, (pkg, site)) in &used {
        eprintln!(
            "  {name:<24} {pkg:<22} first at {}:{}",
            site.file, site.line
        );
    }
    assert!(
        missing.is_empty(),
        "called by the tests but not installed by scripts/setup (add them to its table):\n{}",
        missing
            .iter()
            .map(|(k, v)| format!("  {k}: {}", v.join(", ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The programs the issue behind this check named are among those found, so a scan that
    // stopped finding anything cannot pass.
    for p in [
        "tshark",
        "dumpcap",
        "ip",
        "qemu-system-x86_64",
        "cc",
        "/usr/lib/usrsctp",
    ] {
        assert!(used.contains_key(p), "{p} not found by the scan: {used:?}");
    }
}

/// Each package of the list installs what the list says it does, and after `scripts/setup
/// test` (which `scripts/test` runs first) all of it is there.
#[test]
fn the_setup_list_is_installed_and_each_package_provides_its_programs() {
    if !have_dpkg() {
        return;
    }
    let list = setup_list();
    let paths: BTreeSet<PathBuf> = list
        .iter()
        .flat_map(|(_, w)| w)
        .filter_map(|w| which(w))
        .collect();
    let owner = owners(&paths);
    let deps = Deps::installed();
    let mut wrong = vec![];
    for (pkg, whats) in list {
        let provides = deps.closure([pkg.as_str()]);
        for w in whats {
            match which(&w) {
                None => wrong.push(format!("{w} ({pkg}) is not installed")),
                Some(p) => match owner.get(&p) {
                    Some(o) if provides.contains(o) => {}
                    // Not from a Debian package (python3 of pyenv): there, and not ours to check.
                    None => {}
                    o => wrong.push(format!("{w} is from {o:?}, the list says {pkg}")),
                },
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "scripts/setup's table:\n  {}",
        wrong.join("\n  ")
    );
}
