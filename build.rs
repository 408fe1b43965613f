//! Generates the C headers of librserpool from `src/capi` with cbindgen, into `OUT_DIR`:
//! `rserpool.h` (functions, types, constants of `src/capi/types.rs`),
//! `rserpool-policytypes.h` (`src/capi/policytypes.rs`), `rserpool-csp.h`
//! (`src/capi/csp.rs`), `tagitem.h` (`src/capi/tagitem.rs`) and `rserpool-internals.h`
//! (`src/capi/internals.rs`). The checked-in copies in `include/` must equal them:
//! `tests/c_header.rs` fails otherwise, and `RSERPOOL_WRITE_HEADERS=1 cargo build` updates
//! them.

use std::path::{Path, PathBuf};

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("include");
    std::fs::create_dir_all(&out).unwrap();
    for f in ["src/capi", "cbindgen.toml", "build.rs"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=RSERPOOL_WRITE_HEADERS");
    // librserpool.so carries its ABI version: programs linked with it (or with the librsplib
    // alias scripts/install-lib makes) need librserpool.so.MAJOR (0.x: 0.MINOR).
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap();
    let abi = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librserpool.so.{abi}");

    let policytypes = dir.join("src/capi/policytypes.rs");
    let csp = dir.join("src/capi/csp.rs");
    let tagitem = dir.join("src/capi/tagitem.rs");
    let internals = dir.join("src/capi/internals.rs");
    // The small headers' items are theirs alone.
    let mut exclude = items(&policytypes);
    for f in [&csp, &tagitem, &internals] {
        exclude.extend(items(f));
    }
    exclude.extend(
        [
            "SCTP_UDP_PORT",
            "CLOSE_LIMIT",
            "SESSION_CLOSE_LIMIT",
            "SERVER_CLOSE_LIMIT",
        ]
        .map(String::from),
    );

    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    config.export.exclude.extend(exclude);
    generate(
        cbindgen::Builder::new()
            .with_crate(&dir)
            .with_config(config),
        &out.join("rserpool.h"),
    );
    for (src, name, guard, macros) in [
        (
            &policytypes,
            "rserpool-policytypes.h",
            "RSERPOOL_POLICYTYPES_H",
            POLICY_TRAILER,
        ),
        (&csp, "rserpool-csp.h", "RSERPOOL_CSP_H", CSP_TRAILER),
    ] {
        let mut c = cbindgen::Config {
            language: cbindgen::Language::C,
            include_guard: Some(guard.into()),
            no_includes: true,
            sys_includes: vec!["stdint.h".into()],
            header: Some(HEADER.into()),
            after_includes: Some(macros.into()),
            documentation_style: cbindgen::DocumentationStyle::C,
            ..Default::default()
        };
        c.autogen_warning = Some(AUTOGEN.into());
        generate(
            cbindgen::Builder::new().with_src(src).with_config(c),
            &out.join(name),
        );
    }
    for (src, name, guard, sys, local) in [
        (
            &tagitem,
            "tagitem.h",
            "TAGITEM_H",
            &["sys/types.h", "stdio.h"][..],
            &[][..],
        ),
        (
            &internals,
            "rserpool-internals.h",
            "RSERPOOL_INTERNALS_H",
            &[][..],
            &["rserpool.h", "tagitem.h"][..],
        ),
    ] {
        let mut c = cbindgen::Config {
            language: cbindgen::Language::C,
            include_guard: Some(guard.into()),
            cpp_compat: true,
            no_includes: true,
            sys_includes: sys.iter().map(|s| s.to_string()).collect(),
            includes: local.iter().map(|s| s.to_string()).collect(),
            header: Some(HEADER.into()),
            documentation_style: cbindgen::DocumentationStyle::C,
            style: cbindgen::Style::Tag,
            usize_is_size_t: true,
            ..Default::default()
        };
        c.autogen_warning = Some(AUTOGEN.into());
        // Types of the other headers, which cbindgen does not see from this file alone.
        for (from, to) in [
            ("TagItem", "struct TagItem"),
            ("rsp_addrinfo", "struct rsp_addrinfo"),
            ("rsp_loadinfo", "struct rsp_loadinfo"),
            ("FILE", "FILE"),
        ] {
            if !std::fs::read_to_string(src)
                .unwrap()
                .contains(&format!("pub struct {from}"))
            {
                c.export.rename.insert(from.into(), to.into());
            }
        }
        generate(
            cbindgen::Builder::new().with_src(src).with_config(c),
            &out.join(name),
        );
    }
    if std::env::var_os("RSERPOOL_WRITE_HEADERS").is_some() {
        let include = dir.join("include");
        std::fs::create_dir_all(&include).unwrap();
        for name in HEADERS {
            std::fs::copy(out.join(name), include.join(name)).unwrap();
        }
    }
    println!(
        "cargo:rustc-env=RSERPOOL_GENERATED_INCLUDE={}",
        out.display()
    );
}

/// The headers generated, as `include/` holds them.
const HEADERS: [&str; 5] = [
    "rserpool.h",
    "rserpool-policytypes.h",
    "rserpool-csp.h",
    "tagitem.h",
    "rserpool-internals.h",
];

const HEADER: &str = "/* librserpool: Reliable Server Pooling (RSerPool, RFC 5351-5356), the C API of RSPLIB's\n * rserpool.h. SPDX-License-Identifier: MIT OR Apache-2.0 */";
const AUTOGEN: &str = "/* Generated by build.rs (cbindgen) from src/capi; do not edit. */";

const POLICY_TRAILER: &str = "\n/* True for the load-based (adaptive) policies. */\n#define PPT_IS_ADAPTIVE(p) ( \\\n  ((p) == PPT_LEASTUSED) || ((p) == PPT_LEASTUSED_DEGRADATION) || \\\n  ((p) == PPT_PRIORITY_LEASTUSED) || ((p) == PPT_RANDOMIZED_LEASTUSED) || \\\n  ((p) == PPT_RANDOMIZED_PRIORITY_LEASTUSED) || ((p) == PPT_RANDOMIZED_LEASTUSED_DEGRADATION) || \\\n  ((p) == PPT_PRIORITY_LEASTUSED_DEGRADATION) || ((p) == PPT_RANDOMIZED_PRIORITY_LEASTUSED_DEGRADATION) || \\\n  ((p) == PPT_LEASTUSED_DPF) || ((p) == PPT_LEASTUSED_DEGRADATION_DPF) || \\\n  ((p) == PPT_PRIORITY_LEASTUSED_DPF) || ((p) == PPT_PRIORITY_LEASTUSED_DEGRADATION_DPF) )\n";

const CSP_TRAILER: &str = "\n/* The group of a component ID (its top 8 bits' 16-bit field). */\n#define CID_GROUP(id) (((uint64_t)(id) >> 56) & 0xffffULL)\n/* The object part of a component ID (56 bits). */\n#define CID_OBJECT(id) ((uint64_t)(id) & 0xffffffffffffffULL)\n/* A component ID from a group and an object. */\n#define CID_COMPOUND(group, object) ((((uint64_t)((group) & 0xffff)) << 56) | CID_OBJECT((uint64_t)(object)))\n";

fn generate(b: cbindgen::Builder, path: &Path) {
    match b.generate() {
        Ok(bindings) => {
            bindings.write_to_file(path);
        }
        Err(e) => panic!("cbindgen: {e}"),
    }
}

/// The names of the public items of a file (constants, types, structs, functions).
fn items(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            [
                "pub const ",
                "pub type ",
                "pub struct ",
                "pub extern \"C\" fn ",
                "pub unsafe extern \"C\" fn ",
            ]
            .iter()
            .find_map(|p| l.strip_prefix(p))
        })
        .filter_map(|l| l.split([':', ' ', '(', '=', '<', '{', ';']).next())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}
