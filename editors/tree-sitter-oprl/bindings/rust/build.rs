//! Compiles the generated parser (`src/parser.c`) into the crate.

fn main() {
    let src = std::path::Path::new("src");
    let mut build = cc::Build::new();
    build
        .std("c11")
        .include(src)
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-unused-but-set-variable")
        .flag_if_supported("-Wno-trigraphs");
    let parser = src.join("parser.c");
    build.file(&parser);
    println!("cargo:rerun-if-changed={}", parser.display());
    build.compile("tree-sitter-oprl");
}
