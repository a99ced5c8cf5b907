//! The standard library: `stdlib/**/*.oprl`, embedded in the binary with `include_str!`, so a
//! recipe's `use std::presets::oprl_rloo` works from any directory without the source tree.

macro_rules! modules {
    ($($path:literal),* $(,)?) => {
        /// `(path under stdlib/ without extension, text)` for every module.
        pub static MODULES: &[(&str, &str)] = &[
            $( ($path, include_str!(concat!("../../stdlib/", $path, ".oprl"))), )*
        ];
    };
}

modules![
    "envs/sokoban",
    "envs/visual_sokoban",
    "envs/webshop",
    "envs/sotopia",
    "presets/oprl",
    "presets/oprl_rloo",
    "presets/rloo",
    "presets/grpo",
    "presets/reinforce_pp",
    "presets/gigpo",
    "presets/prime",
    "presets/ppo_gae",
    "presets/merged",
    "presets/token_level",
    "presets/ground_truth",
];

/// `envs/sokoban` -> `std::envs::sokoban`.
pub fn module_name(path: &str) -> String {
    format!("std::{}", path.replace('/', "::"))
}

/// The text of `std::a::b`, given the segments after `std`.
pub fn lookup(segments: &[&str]) -> Option<&'static str> {
    let path = segments.join("/");
    MODULES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, text)| *text)
}

/// Every module name, sorted.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = MODULES.iter().map(|(p, _)| module_name(p)).collect();
    names.sort();
    names
}
