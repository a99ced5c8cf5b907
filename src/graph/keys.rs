//! How a spec describes its recipe keys. The spec structs and enums of the execution graph
//! declare their keys with [`spec!`] and [`names!`]: one declaration gives the Rust type, its
//! serde form, and the key table ([`KeySchema`]) that the checker, `oprl check --resolved`,
//! `oprl explain` and the language server read. Lowering deserialises a checked block into the
//! spec, so a key's name, type, default, range and doc live in one place.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// The type of a key's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    Int,
    Float,
    Bool,
    Str,
    /// An `http://` or `https://` URL.
    Url,
    /// A path to an existing file, relative to the recipe that writes it.
    File,
    /// A path to an existing directory, relative to the recipe that writes it.
    Dir,
    /// A pretrained model, relative to the recipe that writes it: a Hugging Face directory or
    /// a `.gguf` file.
    Model,
    /// One of a fixed set of names, written without quotes.
    Name(&'static [&'static str]),
    /// A list of exactly this many integers.
    IntList(usize),
    StrList,
    /// A list of names from a fixed set, written without quotes.
    NameList(&'static [&'static str]),
    /// A nested block of this kind (a `kind [variant] { ... }` statement or a `key = variant { ... }`
    /// value, or just `key = variant` when the variant has no keys).
    Block(&'static str),
}

impl Ty {
    /// How the type reads in a diagnostic: "an integer", "one of `text`, `image`".
    pub fn describe(&self) -> String {
        match self {
            Ty::Int => "an integer".into(),
            Ty::Float => "a number".into(),
            Ty::Bool => "`true` or `false`".into(),
            Ty::Str => "a string".into(),
            Ty::Url => "a URL string".into(),
            Ty::File => "a file path string".into(),
            Ty::Dir => "a directory path string".into(),
            Ty::Model => "a model path string (a directory or a `.gguf` file)".into(),
            Ty::Name(options) => format!(
                "one of {}",
                crate::diagnostics::backticked_list(options.iter().copied())
            ),
            Ty::IntList(n) => format!("a list of {n} integers"),
            Ty::StrList => "a list of strings".into(),
            Ty::NameList(options) => format!(
                "a list of names from {}",
                crate::diagnostics::backticked_list(options.iter().copied())
            ),
            Ty::Block(kind) => format!("a `{kind}` block"),
        }
    }
}

/// A key's default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'static str),
    Name(&'static str),
    IntList(&'static [i64]),
    StrList(&'static [&'static str]),
    NameList(&'static [&'static str]),
    /// A nested block with every key at its default.
    Block,
    /// Computed from other keys after checking; the text says how.
    Derived(&'static str),
    /// May stay unset; the text says what unset means.
    Optional(&'static str),
    /// Must be set.
    Required,
}

/// One end of a numeric range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Unbounded,
    Incl(f64),
    Excl(f64),
}

/// The numbers a key accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: Bound,
    pub max: Bound,
}

impl Range {
    pub const ANY: Range = Range::new(Bound::Unbounded, Bound::Unbounded);
    /// `>= 0`.
    pub const NON_NEGATIVE: Range = Range::new(Bound::Incl(0.0), Bound::Unbounded);
    /// `> 0`.
    pub const POSITIVE: Range = Range::new(Bound::Excl(0.0), Bound::Unbounded);
    /// `>= 1`.
    pub const AT_LEAST_ONE: Range = Range::new(Bound::Incl(1.0), Bound::Unbounded);
    /// `[0, 1]`.
    pub const UNIT: Range = Range::new(Bound::Incl(0.0), Bound::Incl(1.0));
    /// `(0, 1)`.
    pub const OPEN_UNIT: Range = Range::new(Bound::Excl(0.0), Bound::Excl(1.0));
    /// `(0, 1]`.
    pub const HALF_OPEN_UNIT: Range = Range::new(Bound::Excl(0.0), Bound::Incl(1.0));

    pub const fn new(min: Bound, max: Bound) -> Range {
        Range { min, max }
    }

    pub const fn between(min: f64, max: f64) -> Range {
        Range::new(Bound::Incl(min), Bound::Incl(max))
    }

    pub fn contains(&self, x: f64) -> bool {
        let above = match self.min {
            Bound::Unbounded => true,
            Bound::Incl(m) => x >= m,
            Bound::Excl(m) => x > m,
        };
        let below = match self.max {
            Bound::Unbounded => true,
            Bound::Incl(m) => x <= m,
            Bound::Excl(m) => x < m,
        };
        above && below
    }

    /// "in (0, 1)", "at least 1", "greater than 0".
    pub fn describe(&self) -> String {
        let num = |x: f64| {
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{}", x as i64)
            } else {
                format!("{x}")
            }
        };
        match (self.min, self.max) {
            (Bound::Unbounded, Bound::Unbounded) => "any number".into(),
            (Bound::Incl(a), Bound::Unbounded) => format!("at least {}", num(a)),
            (Bound::Excl(a), Bound::Unbounded) => format!("greater than {}", num(a)),
            (Bound::Unbounded, Bound::Incl(b)) => format!("at most {}", num(b)),
            (Bound::Unbounded, Bound::Excl(b)) => format!("less than {}", num(b)),
            (lo, hi) => {
                let (l, a) = match lo {
                    Bound::Incl(a) => ('[', a),
                    Bound::Excl(a) => ('(', a),
                    Bound::Unbounded => unreachable!(),
                };
                let (h, b) = match hi {
                    Bound::Incl(b) => (']', b),
                    Bound::Excl(b) => (')', b),
                    Bound::Unbounded => unreachable!(),
                };
                format!("in {l}{}, {}{h}", num(a), num(b))
            }
        }
    }
}

/// One key of a block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeySchema {
    /// The name a recipe writes.
    pub key: &'static str,
    /// The spec field it deserialises into (usually the same name).
    pub field: &'static str,
    pub ty: Ty,
    pub default: DefaultValue,
    pub doc: &'static str,
    /// For numbers, and for every element of an integer list.
    pub range: Range,
}

/// A doc comment's text without the space that `///` leaves in front.
pub const fn trim_doc(doc: &'static str) -> &'static str {
    doc.trim_ascii_start()
}

/// Declares a spec struct whose fields are recipe keys. Each field carries its doc, its
/// recipe type, its default and (optionally) its range; `#[key = "name"]` gives a recipe name
/// that differs from the field's, and `#[serde(...)]` attributes pass through. The struct gets
/// `KEYS`, its [`KeySchema`] table in field order.
macro_rules! spec {
    (@key $field:ident) => { stringify!($field) };
    (@key $field:ident $key:literal) => { $key };
    (@range) => { $crate::graph::keys::Range::ANY };
    (@range $range:expr) => { $range };
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $(#[key = $key:literal])?
                $(#[serde($($serde:tt)*)])*
                pub $field:ident : $fty:ty = $kty:expr, $default:expr $(, $range:expr)?;
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $(
                $(#[doc = $doc])+
                $(#[serde($($serde)*)])*
                pub $field: $fty,
            )*
        }

        impl $name {
            /// The recipe keys of this spec, in field order.
            pub const KEYS: &'static [$crate::graph::keys::KeySchema] = &[$(
                $crate::graph::keys::KeySchema {
                    key: spec!(@key $field $($key)?),
                    field: stringify!($field),
                    ty: $kty,
                    default: $default,
                    doc: $crate::graph::keys::trim_doc(concat!($($doc),+)),
                    range: spec!(@range $($range)?),
                },
            )*];
        }
    };
}

/// Declares an enum of names: each variant with the name recipes and graph.json write (and old
/// names still read, after `|`). The enum gets `NAMES`, `NAMES_OR_NONE` (for a key where `none`
/// means unset) and `name()`.
macro_rules! names {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $text:literal $(| $alias:literal)*,
            )*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $text $(, alias = $alias)*)]
                $variant,
            )*
        }

        impl $name {
            /// Every name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),*];
            /// `none`, then every name.
            pub const NAMES_OR_NONE: &'static [&'static str] = &["none", $($text),*];

            /// The name recipes and graph.json write.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }
    };
}

pub(crate) use {names, spec};

/// A key's default as the JSON its spec field reads; `None` when it has no fixed value.
pub fn default_json(key: &KeySchema) -> Option<serde_json::Value> {
    use serde_json::json;
    Some(match key.default {
        DefaultValue::Int(i) => json!(i),
        DefaultValue::Float(x) => json!(x),
        DefaultValue::Bool(b) => json!(b),
        DefaultValue::Str(s) => json!(s),
        DefaultValue::Name(n) if matches!(key.ty, Ty::Block(_)) => json!({ "kind": n }),
        DefaultValue::Name(n) => json!(n),
        DefaultValue::IntList(v) => json!(v),
        DefaultValue::StrList(v) | DefaultValue::NameList(v) => json!(v),
        DefaultValue::Block
        | DefaultValue::Derived(_)
        | DefaultValue::Optional(_)
        | DefaultValue::Required => return None,
    })
}

/// A spec with every key at its schema default. Only for specs whose keys all have a fixed
/// default or are optional (the environment specs); a test builds each one.
pub fn defaults<T: DeserializeOwned>(keys: &[KeySchema]) -> T {
    let object: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .filter_map(|k| Some((k.field.to_string(), default_json(k)?)))
        .collect();
    serde_json::from_value(serde_json::Value::Object(object))
        .expect("a spec's schema defaults deserialise into it")
}

/// Deserialises an optional name where `none` (or null) means unset.
pub fn none_is_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None => Ok(None),
        Some(serde_json::Value::String(s)) if s == "none" => Ok(None),
        Some(value) => T::deserialize(value)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// Reads a name into its enum (`"k3"` -> `KlKind::K3`), old names included.
pub fn from_name<T: DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_describe_themselves() {
        assert_eq!(Range::OPEN_UNIT.describe(), "in (0, 1)");
        assert_eq!(Range::AT_LEAST_ONE.describe(), "at least 1");
        assert_eq!(Range::POSITIVE.describe(), "greater than 0");
        assert!(!Range::OPEN_UNIT.contains(0.0) && Range::OPEN_UNIT.contains(0.2));
        assert!(Range::UNIT.contains(1.0) && !Range::UNIT.contains(1.01));
    }
}
